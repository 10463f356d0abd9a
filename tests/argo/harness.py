#!/usr/bin/env python3
"""A test harness that runs featurekit's Argo YAML as Argo would, with the real binaries on this
machine: parameters and expressions substituted, steps and DAG tasks in dependency order, fan-outs
(withSequence, withParam), input artifacts placed at their declared paths, output parameters read
from files, output artifacts kept by key in a local artifact repository, retries by the
retryStrategy's expression, resource templates (ConfigMaps kept, Workflows run), onExit, and the
custom metrics computed. It understands only the subset of Argo the YAML uses: any other field
fails the run with `unsupported`, so the YAML cannot lean on something this harness ignores.
Accepted but not simulated (cluster concerns): resources, securityContext, serviceAccountName,
podGC, ttlStrategy, activeDeadlineSeconds of a workflow, parallelism (tasks run one at a time,
which every limit allows), backoff (retries do not wait), mutexes (one task at a time holds all).

  harness.py run --manifests FILE --bin-dir DIR --work DIR [--configmap NAME KEY=VALUE...]
      [--configmap-file NAME KEY=PATH...] [--secret NAME KEY=VALUE] [--stub-task TASK ARTIFACT=DIR]
      WORKFLOWTEMPLATE [-p NAME=VALUE...] [--scheduled-time T]
  harness.py commands --manifests FILE     every step's container command line, sample inputs, as JSON

`run` prints a JSON report: the workflows run (name, phase, nodes with their command lines, exit
codes and outputs), the metrics emitted, the ConfigMaps applied. It exits 0 whatever the phase.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check import Loader  # noqa: E402  (the same YAML reading as the checker)


class Unsupported(Exception):
    pass


# ---- expressions: the subset of expr (and sprig) the YAML uses ---------------------------------

TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|&&|\|\||[-+*/()?:.,\[\]!<>]))")


def tokenize(s):
    out, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"expression {s!r}: cannot read at {s[pos:]!r}")
        num, string, ident, op = m.groups()
        if num is not None:
            out.append(("num", float(num) if "." in num else int(num)))
        elif string is not None:
            out.append(("str", string[1:-1].replace("\\'", "'").replace('\\"', '"')))
        elif ident is not None:
            out.append(("id", ident))
        else:
            out.append(("op", op))
        pos = m.end()
    return out


def go_duration(s):
    m = re.fullmatch(r"(-?)((?:\d+(?:\.\d+)?(?:h|m|s))+)", s)
    if not m:
        raise Unsupported(f"duration {s!r}")
    total = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", m.group(2)))
    return timedelta(seconds=-total if m.group(1) else total)


def go_layout(layout):
    known = {"2006-01-02": "%Y-%m-%d", "2006-01-02T15:04:05Z07:00": "rfc3339"}
    if layout not in known:
        raise Unsupported(f"time layout {layout!r}")
    return known[layout]


def to_date(layout, s):
    f = go_layout(layout)
    try:
        if f == "rfc3339":
            return datetime.fromisoformat(s.replace("Z", "+00:00"))
        return datetime.strptime(s, f).replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime(1, 1, 1, tzinfo=timezone.utc)  # sprig's toDate: the zero time


def jsonpath(doc, path):
    if not re.fullmatch(r"\$(\.[A-Za-z0-9_]+)+", path):
        raise Unsupported(f"jsonpath {path!r}")
    v = json.loads(doc)
    for part in path.split(".")[1:]:
        v = v[part]
    return v


FUNCS = {
    "sprig.toDate": to_date,
    "sprig.dateModify": lambda d, t: t + go_duration(d),
    "sprig.dateInZone": lambda f, t, zone: t.astimezone(timezone.utc).strftime(go_layout(f)) if zone == "UTC" else (_ for _ in ()).throw(Unsupported(f"zone {zone}")),
    "sprig.unixEpoch": lambda t: str(int(t.timestamp())),
    "sprig.now": lambda: datetime.now(timezone.utc),
    "jsonpath": jsonpath,
    "int": lambda v: int(float(v)) if isinstance(v, str) else int(v),
    "asInt": lambda v: int(v),
    "string": lambda v: str(v),
}


class Expr:
    """A Pratt parser evaluating as it goes; `barewords` makes unknown names strings (Argo's
    `when`: `Failed != Succeeded`)."""

    def __init__(self, text, scope, barewords=False):
        self.t, self.i, self.scope, self.barewords, self.skip = tokenize(text), 0, scope, barewords, 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else ("end", None)

    def take(self, op=None):
        tok = self.peek()
        if op is not None and tok != ("op", op):
            raise Unsupported(f"expected {op!r}, found {tok}")
        self.i += 1
        return tok

    def run(self):
        v = self.ternary()
        if self.peek()[0] != "end":
            raise Unsupported(f"unexpected {self.peek()}")
        return v

    def ternary(self):
        cond = self.binary(0)
        if self.peek() == ("op", "?"):
            self.take()
            # expr is lazy: the branch not taken is parsed, never evaluated
            a = self.branch(not cond)
            self.take(":")
            b = self.branch(bool(cond))
            return a if cond else b
        return cond

    def branch(self, skipped):
        self.skip += skipped
        try:
            return self.ternary()
        finally:
            self.skip -= skipped

    PREC = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, ">": 4, "<=": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6}

    def binary(self, min_prec):
        left = self.unary()
        while True:
            kind, op = self.peek()
            if kind != "op" or op not in self.PREC or self.PREC[op] <= min_prec - 1 or self.PREC[op] < min_prec:
                return left
            self.take()
            right = self.binary(self.PREC[op] + 1)
            left = self.apply(op, left, right)

    def apply(self, op, a, b):
        if self.skip:
            return None
        if op == "+":
            if isinstance(a, str) != isinstance(b, str):
                raise Unsupported(f"{a!r} + {b!r}: mixed types")
            return a + b
        if op in ("-", "*", "/"):
            if not all(isinstance(x, (int, float)) for x in (a, b)):
                raise Unsupported(f"{a!r} {op} {b!r}: not numbers")
            return a - b if op == "-" else a * b if op == "*" else (a // b if isinstance(a, int) and isinstance(b, int) else a / b)
        return {"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b, ">": lambda: a > b,
                "<=": lambda: a <= b, ">=": lambda: a >= b, "&&": lambda: bool(a and b), "||": lambda: bool(a or b)}[op]()

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            v = self.unary()
            return None if self.skip else not v
        if self.peek() == ("op", "-"):
            self.take()
            v = self.unary()
            return None if self.skip else -v
        return self.primary()

    def primary(self):
        kind, v = self.take()
        if kind in ("num", "str"):
            return v
        if (kind, v) == ("op", "("):
            r = self.ternary()
            self.take(")")
            return r
        if kind != "id":
            raise Unsupported(f"unexpected {v!r}")
        name = v
        while self.peek() == ("op", ".") or self.peek() == ("op", "["):
            if self.take()[1] == ".":
                name += "." + self.take()[1]
            else:
                kind, key = self.take()
                if kind != "str":
                    raise Unsupported("only ['name'] indexing")
                self.take("]")
                name += "." + key
        if self.peek() == ("op", "("):
            self.take()
            args = []
            while self.peek() != ("op", ")"):
                args.append(self.ternary())
                if self.peek() == ("op", ","):
                    self.take()
            self.take(")")
            if name not in FUNCS:
                raise Unsupported(f"function {name}")
            return None if self.skip else FUNCS[name](*args)
        if name in ("true", "false"):
            return name == "true"
        if name in self.scope:
            return self.scope[name]
        if self.skip:
            return None
        if self.barewords and "." not in name:
            return name
        raise Unsupported(f"unknown variable {name!r} (known: {sorted(self.scope)})")


TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def subst(s, scope):
    """Argo's {{name}} and {{=expression}} substitution of one string; an unknown name fails."""
    def one(m):
        inner = m.group(1).strip()
        if inner.startswith("="):
            v = Expr(inner[1:], scope).run()
        elif inner in scope:
            v = scope[inner]
        else:
            raise Unsupported(f"unknown variable {{{{{inner}}}}} (known: {sorted(scope)})")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return TAG.sub(one, s)


def subst_all(o, scope):
    if isinstance(o, str):
        return subst(o, scope)
    if isinstance(o, list):
        return [subst_all(v, scope) for v in o]
    if isinstance(o, dict):
        return {k: subst_all(v, scope) for k, v in o.items()}
    return o


def when(expr, scope):
    return bool(Expr(subst(expr, scope), {}, barewords=True).run())


def only(obj, what, allowed, accepted=()):
    extra = set(obj) - set(allowed) - set(accepted)
    if extra:
        raise Unsupported(f"{what}: {sorted(extra)} not implemented by the harness")


# ---- the cluster and the runs ------------------------------------------------------------------

class Failed(Exception):
    def __init__(self, message, exit_code=None):
        super().__init__(message)
        self.exit_code = exit_code


class Cluster:
    def __init__(self, docs, bin_dir, work, configmaps, secrets, stubs, docker=None):
        self.wftemplates = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "WorkflowTemplate"}
        self.configmaps = {d["metadata"]["name"]: dict(d.get("data") or {}) for d in docs if d.get("kind") == "ConfigMap"}
        for name, data in configmaps.items():
            self.configmaps.setdefault(name, {}).update(data)
        self.secrets = secrets
        self.bin_dir, self.work = Path(bin_dir).resolve(), Path(work).resolve()
        self.repo = self.work / "artifact-repository"
        self.stubs = stubs
        # with --docker DIR, each pod is its image's container (as 65532, read-only root, no
        # capabilities, the host's loopback), DIR mounted at the same path: every store is below it
        self.docker = Path(docker).resolve() if docker else None
        self.workflows = {}
        self.metrics = []
        self.applied = []
        self.pods = 0


    def in_container(self, image, command, args, env, root):
        """`docker run` of a pod: the image as the YAML names it (`make images` tags it), the
        step's command, its environment; files below the mounted directory keep their paths."""
        for d in [self.docker, *self.docker.rglob("*")]:
            if d.is_dir():
                d.chmod(0o777)
        argv = ["docker", "run", "--rm", "--network", "host", "--user", "65532:65532", "--read-only",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "-v", f"{self.docker}:{self.docker}", "-w", str(root), "--entrypoint", command]
        for k, v in sorted(env.items()):
            if k != "PATH":
                argv += ["-e", f"{k}={v}"]
        return argv + [image] + list(args)
    def submit(self, wf):
        name = wf["metadata"]["name"]
        if name in self.workflows:
            return self.workflows[name]
        run = Run(self, wf)
        self.workflows[name] = run.report
        run.execute()
        return run.report


class Run:
    def __init__(self, cluster, wf):
        self.c = cluster
        only(wf, "Workflow", ("apiVersion", "kind", "metadata", "spec"))
        only(wf["metadata"], "Workflow metadata", ("name", "labels", "annotations"))
        spec = dict(wf["spec"])
        only(spec, "Workflow spec", ("workflowTemplateRef", "arguments", "entrypoint", "templates"))
        args = {p["name"]: p for p in (spec.get("arguments") or {}).get("parameters") or []}
        if "workflowTemplateRef" in spec:
            only(spec["workflowTemplateRef"], "workflowTemplateRef", ("name",))
            tmpl = self.c.wftemplates[spec["workflowTemplateRef"]["name"]]["spec"]
            merged = {p["name"]: dict(p) for p in (tmpl.get("arguments") or {}).get("parameters") or []}
            for n, p in args.items():
                if n not in merged:
                    raise Failed(f"argument {n} is not a parameter of the template")
                merged[n] = {"name": n, "value": p["value"]}
            spec = dict(tmpl)
            args = merged
        only(spec, "workflow spec", ("entrypoint", "templates", "arguments", "onExit", "metrics"),
             accepted=("serviceAccountName", "activeDeadlineSeconds", "podGC", "ttlStrategy", "parallelism"))
        self.spec = spec
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.name = wf["metadata"]["name"]
        created = datetime.now(timezone.utc).replace(microsecond=0)
        self.globals = {
            "workflow.name": self.name,
            "workflow.uid": str(uuid.uuid4()),
            "workflow.creationTimestamp.RFC3339": created.isoformat().replace("+00:00", "Z"),
        }
        sched = (wf["metadata"].get("annotations") or {}).get("workflows.argoproj.io/scheduled-time")
        if sched:
            self.globals["workflow.scheduledTime"] = sched
        for n, p in args.items():
            only(p, f"parameter {n}", ("name", "value", "valueFrom", "description"))
            if "valueFrom" in p:
                only(p["valueFrom"], f"parameter {n} valueFrom", ("configMapKeyRef",))
                ref = p["valueFrom"]["configMapKeyRef"]
                only(ref, "configMapKeyRef", ("name", "key"))
                cm = self.c.configmaps.get(ref["name"], {})
                if ref["key"] not in cm:
                    raise Failed(f"parameter {n}: ConfigMap {ref['name']} has no key {ref['key']}")
                self.globals[f"workflow.parameters.{n}"] = cm[ref["key"]]
            elif "value" in p:
                self.globals[f"workflow.parameters.{n}"] = str(p["value"])
            else:
                raise Failed(f"parameter {n} has no value")
        for n in list(self.globals):
            if n.startswith("workflow.parameters."):
                self.globals[n] = subst(self.globals[n], self.globals)
        self.report = {"name": self.name, "phase": "Running", "nodes": [], "failures": []}

    # templates
    def call(self, tmpl, inputs, artifacts, node, holder=None):
        """Runs a template (from this workflow, or `holder`'s when templateRef'd); returns outputs."""
        templates = holder if holder is not None else self.templates
        t = templates[tmpl]
        only(t, f"template {tmpl}", ("name", "inputs", "outputs", "steps", "dag", "container", "resource", "metrics",
                                     "retryStrategy", "activeDeadlineSeconds", "volumes", "synchronization"),
             accepted=("securityContext", "parallelism"))
        scope = dict(self.globals)
        for p in (t.get("inputs") or {}).get("parameters") or []:
            only(p, "input parameter", ("name", "value", "description"))
            if p["name"] in inputs:
                v = inputs[p["name"]]
            elif "value" in p:
                v = subst(p["value"], scope)
            else:
                raise Failed(f"{node}: input parameter {p['name']} not given")
            scope[f"inputs.parameters.{p['name']}"] = v
        declared_arts = {a["name"]: a for a in (t.get("inputs") or {}).get("artifacts") or []}
        for name in artifacts:
            if name not in declared_arts:
                raise Failed(f"{node}: artifact {name} is not an input")
        for name, a in declared_arts.items():
            only(a, "input artifact", ("name", "path"))
            if name not in artifacts:
                raise Failed(f"{node}: input artifact {name} not given")
            scope[f"inputs.artifacts.{name}"] = artifacts[name]
        if "steps" in t:
            outputs = self.steps(t, scope, node, templates)
        elif "dag" in t:
            outputs = self.dag(t, scope, node, templates)
        elif "container" in t:
            outputs = self.retrying(t, scope, node)
        elif "resource" in t:
            outputs = self.resource(t, scope, node)
        else:
            raise Unsupported(f"template {tmpl}: no steps, dag, container or resource")
        return outputs

    def emit(self, metrics, scope):
        for m in (metrics or {}).get("prometheus") or []:
            only(m, "metric", ("name", "help", "labels", "when", "counter", "gauge", "histogram"))
            if "when" in m and not when(m["when"], scope):
                continue
            kind = next(k for k in ("counter", "gauge", "histogram") if k in m)
            only(m[kind], kind, ("value", "realtime", "buckets", "operation"))
            self.c.metrics.append({
                "name": m["name"], "type": kind,
                "labels": {lab["key"]: subst(lab["value"], scope) for lab in m.get("labels") or []},
                "value": float(subst(m[kind]["value"], scope)),
            })

    def template_outputs(self, t, scope, children):
        out = {"parameters": {}, "artifacts": {}}
        for p in (t.get("outputs") or {}).get("parameters") or []:
            only(p, "output parameter", ("name", "valueFrom"))
            only(p["valueFrom"], "valueFrom", ("expression",))
            out["parameters"][p["name"]] = str(Expr(p["valueFrom"]["expression"], children).run())
        for a in (t.get("outputs") or {}).get("artifacts") or []:
            only(a, "output artifact", ("name", "from"))
            out["artifacts"][a["name"]] = subst(a["from"], children)
        return out

    def scope_of(self, prefix, name, outputs):
        s = {}
        for k, v in outputs["parameters"].items():
            s[f"{prefix}.{name}.outputs.parameters.{k}"] = v
        for k, v in outputs["artifacts"].items():
            s[f"{prefix}.{name}.outputs.artifacts.{k}"] = v
        return s

    def invoke(self, call, scope, node, templates, item=None):
        only(call, f"{node} call", ("name", "template", "templateRef", "arguments", "when", "depends",
                                    "withSequence", "withParam"))
        local = dict(scope)
        if item is not None:
            local["item"] = item
        args = call.get("arguments") or {}
        only(args, "arguments", ("parameters", "artifacts"))
        params = {}
        for p in args.get("parameters") or []:
            only(p, "argument", ("name", "value"))
            params[p["name"]] = subst(p["value"], local)
        arts = {}
        for a in args.get("artifacts") or []:
            only(a, "argument artifact", ("name", "from"))
            arts[a["name"]] = subst(a["from"], local)
        if "templateRef" in call:
            only(call["templateRef"], "templateRef", ("name", "template"))
            holder = {t["name"]: t for t in self.c.wftemplates[call["templateRef"]["name"]]["spec"]["templates"]}
            return self.call(call["templateRef"]["template"], params, arts, node, holder)
        return self.call(call["template"], params, arts, node, templates)

    def steps(self, t, scope, node, templates):
        children = dict(scope)
        for group in t["steps"]:
            for s in group:
                name = f"{node}.{s['name']}"
                if "when" in s and not when(s["when"], children):
                    self.report["nodes"].append({"node": name, "phase": "Skipped"})
                    continue
                out = self.invoke(s, children, name, templates)
                children.update(self.scope_of("steps", s["name"], out))
        outputs = self.template_outputs(t, scope, children)
        self.emit(t.get("metrics"), {**scope, "status": "Succeeded",
                                     **{f"outputs.parameters.{k}": v for k, v in outputs["parameters"].items()},
                                     **{k: v for k, v in children.items() if k.startswith("steps.")}})
        return outputs

    def dag(self, t, scope, node, templates):
        only(t["dag"], "dag", ("tasks",))
        tasks = {k["name"]: k for k in t["dag"]["tasks"]}
        deps = {}
        for n, k in tasks.items():
            d = k.get("depends", "")
            words = [w.strip() for w in d.split("&&")] if d else []
            if any(not re.fullmatch(r"[A-Za-z0-9-]+", w) for w in words):
                raise Unsupported(f"depends {d!r}: only task names joined by &&")
            deps[n] = words
        done, children = [], dict(scope)
        while len(done) < len(tasks):
            ready = [n for n in tasks if n not in done and all(d in done for d in deps[n])]
            if not ready:
                raise Failed(f"{node}: a dependency cycle")
            n = ready[0]
            k = tasks[n]
            items = [None]
            if "withSequence" in k:
                only(k["withSequence"], "withSequence", ("count",))
                items = [str(i) for i in range(int(subst(k["withSequence"]["count"], children)))]
            elif "withParam" in k:
                items = [x if isinstance(x, str) else json.dumps(x) for x in json.loads(subst(k["withParam"], children))]
            results = []
            if n in self.c.stubs:
                # not run: the test gives this task's output artifacts (its source is not here)
                self.report["nodes"].append({"node": f"{node}.{n}", "phase": "Stubbed", "artifacts": self.c.stubs[n]})
                results, items = [{"parameters": {}, "artifacts": dict(self.c.stubs[n])}], [None]
            for i, item in enumerate(items if n not in self.c.stubs else []):
                results.append(self.invoke(k, children, f"{node}.{n}" + (f"({i}:{item})" if item is not None else ""), templates, item))
            if len(results) == 1 and items == [None]:
                children.update(self.scope_of("tasks", n, results[0]))
            else:  # a fan-out's outputs are the JSON list of its children's
                agg = {"parameters": {p: json.dumps([r["parameters"][p] for r in results]) for p in results[0]["parameters"]},
                       "artifacts": {}}
                children.update(self.scope_of("tasks", n, agg))
            done.append(n)
        return self.template_outputs(t, scope, children)

    def retrying(self, t, scope, node):
        rs = t.get("retryStrategy") or {}
        only(rs, "retryStrategy", ("limit", "expression"), accepted=("backoff",))
        limit = int(rs.get("limit", 0))
        attempt = 0
        while True:
            try:
                return self.container(t, scope, f"{node}({attempt})" if attempt else node)
            except Failed as e:
                if attempt >= limit or "expression" not in rs or e.exit_code is None:
                    raise
                retry = Expr(rs["expression"], {"lastRetry.exitCode": str(e.exit_code), "lastRetry.status": "Failed"}).run()
                if not retry:
                    raise
                attempt += 1

    def container(self, t, scope, node):
        c = t["container"]
        only(c, "container", ("image", "command", "args", "env", "envFrom", "volumeMounts"),
             accepted=("resources", "securityContext"))
        if "synchronization" in t:
            only(t["synchronization"], "synchronization", ("mutexes",))
        command = c["command"]
        step = Path(command[0]).name
        if len(command) != 1 or not re.fullmatch(rf"(.*/)?featurekit/{step}(:[\w.-]+)?", c["image"]):
            raise Unsupported(f"{node}: command {command} does not run image {c['image']}'s step")
        self.c.pods += 1
        root = self.c.work / "pods" / f"{self.c.pods:03d}-{step}"
        root.mkdir(parents=True)
        mounts = {}
        volumes = {v["name"]: v for v in t.get("volumes") or []}
        for m in c.get("volumeMounts") or []:
            only(m, "volumeMount", ("name", "mountPath", "readOnly"))
            v = volumes[m["name"]]
            only(v, "volume", ("name", "emptyDir", "configMap", "secret"))
            target = root / m["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in v:
                for key, path in self.c.configmaps.get(v["configMap"]["name"] + "#files", {}).items():
                    shutil.copy(path, target / key)
            if "secret" in v and not v["secret"].get("optional") and v["secret"]["secretName"] not in self.c.secrets:
                raise Failed(f"{node}: Secret {v['secret']['secretName']} missing")
            mounts[m["mountPath"]] = target
        arts = (t.get("inputs") or {}).get("artifacts") or []
        for a in arts:
            src = Path(scope[f"inputs.artifacts.{a['name']}"])
            dest = root / a["path"].lstrip("/")
            shutil.copytree(src, dest, dirs_exist_ok=True)
            mounts[a["path"]] = dest

        def local(s):
            for mp, target in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if s == mp or s.startswith(mp.rstrip("/") + "/"):
                    return str(target) + s[len(mp.rstrip("/")):]
                if s.startswith("--") and "=" + mp in s:
                    return s.replace("=" + mp, "=" + str(target), 1)
            return s
        args = [subst(a, scope) for a in c.get("args") or []]
        env = {"PATH": os.environ.get("PATH", ""), "ARGO_PROGRESS_FILE": str(root / "var/run/argo/progress")}
        (root / "var/run/argo").mkdir(parents=True)
        for e in c.get("env") or []:
            only(e, "env", ("name", "value", "valueFrom"))
            if "value" in e:
                env[e["name"]] = subst(e["value"], scope)
                continue
            ref_kind, ref = next(iter(e["valueFrom"].items()))
            store = self.c.configmaps if ref_kind == "configMapKeyRef" else self.c.secrets if ref_kind == "secretKeyRef" else None
            if store is None:
                raise Unsupported(f"env valueFrom {ref_kind}")
            value = store.get(ref["name"], {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                raise Failed(f"{node}: {ref_kind} {ref['name']}/{ref['key']} missing")
            if value is not None:
                env[e["name"]] = value
        for e in c.get("envFrom") or []:
            only(e, "envFrom", ("secretRef",))
            data = self.c.secrets.get(e["secretRef"]["name"])
            if data is None and not e["secretRef"].get("optional"):
                raise Failed(f"{node}: Secret {e['secretRef']['name']} missing")
            env.update(data or {})
        argv = [str(self.c.bin_dir / step)] + [local(a) for a in args]
        deadline = float(t.get("activeDeadlineSeconds", 0)) or None
        record = {"node": node, "step": step, "argv": [command[0]] + args, "env": sorted(k for k in env if k.startswith("FEATUREKIT_"))}
        if self.c.docker:
            record["container"] = c["image"]
            argv = self.c.in_container(c["image"], command[0], argv[1:], env, root)
            env = {"PATH": os.environ.get("PATH", "")}
        self.report["nodes"].append(record)
        try:
            p = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=deadline)
            code = p.returncode
        except subprocess.TimeoutExpired:
            code, p = None, None
        record["exit_code"] = code
        if p is not None:
            record["stderr_tail"] = p.stderr[-2000:]
        record["progress"] = (root / "var/run/argo/progress").read_text() if (root / "var/run/argo/progress").exists() else None
        outputs = {"parameters": {}, "artifacts": {}}
        for o in (t.get("outputs") or {}).get("parameters") or []:
            only(o, "output parameter", ("name", "valueFrom"))
            only(o["valueFrom"], "valueFrom", ("path", "default"))
            f = Path(local(o["valueFrom"]["path"]))
            if f.exists():
                outputs["parameters"][o["name"]] = f.read_text()
            elif "default" in o["valueFrom"]:
                outputs["parameters"][o["name"]] = o["valueFrom"]["default"]
            else:
                raise Failed(f"{node}: output {o['name']}: {f} missing")
        for a in (t.get("outputs") or {}).get("artifacts") or []:
            only(a, "output artifact", ("name", "path", "archive", "s3", "gcs"))
            if a.get("archive") != {"none": {}}:
                raise Unsupported(f"{node}: artifact {a['name']}: only archive none")
            loc = a.get("s3") or a.get("gcs")
            only(loc, "artifact location", ("key",))
            key = subst(loc["key"], scope)
            dest = self.c.repo / key
            if code == 0:
                shutil.copytree(Path(local(a["path"])), dest, dirs_exist_ok=True)
            outputs["artifacts"][a["name"]] = str(dest)
        record["outputs"] = outputs["parameters"]
        mscope = {**scope, "status": "Succeeded" if code == 0 else "Failed", "exitCode": str(code),
                  **{f"outputs.parameters.{k}": v for k, v in outputs["parameters"].items()}}
        self.emit(t.get("metrics"), mscope)
        if code != 0:
            self.report["failures"].append({"node": node, "exit_code": code})
            raise Failed(f"{node}: {step} exited {code}", code)
        return outputs

    def resource(self, t, scope, node):
        r = t["resource"]
        only(r, "resource", ("action", "manifest", "successCondition", "failureCondition", "setOwnerReference"))
        if r["action"] != "apply":
            raise Unsupported(f"resource action {r['action']}")
        doc = yaml.load(subst(r["manifest"], scope), Loader=Loader)
        self.report["nodes"].append({"node": node, "resource": f"{doc['kind']}/{doc['metadata']['name']}"})
        if doc["kind"] == "ConfigMap":
            self.c.configmaps[doc["metadata"]["name"]] = doc.get("data") or {}
            self.c.applied.append(doc)
            return {"parameters": {}, "artifacts": {}}
        if doc["kind"] != "Workflow":
            raise Unsupported(f"resource kind {doc['kind']}")
        child = self.c.submit(doc)
        if (r.get("successCondition"), r.get("failureCondition")) != ("status.phase == Succeeded", "status.phase in (Failed, Error)"):
            raise Unsupported("only successCondition status.phase == Succeeded, failureCondition status.phase in (Failed, Error)")
        if child["phase"] != "Succeeded":
            raise Failed(f"{node}: Workflow {doc['metadata']['name']} {child['phase']}")
        return {"parameters": {}, "artifacts": {}}

    def execute(self):
        status = "Succeeded"
        try:
            try:
                self.call(self.spec["entrypoint"], {}, {}, self.name)
            except Failed as e:
                status = "Failed"
                self.report["error"] = str(e)
            self.globals["workflow.status"] = status
            self.globals["workflow.failures"] = json.dumps(self.report["failures"])
            if self.spec.get("onExit"):
                self.call(self.spec["onExit"], {}, {}, f"{self.name}.onExit")
            self.emit(self.spec.get("metrics"), self.globals)
        except Failed as e:
            status = "Error"
            self.report["error"] = str(e)
        self.report["phase"] = status


# ---- sample command lines ------------------------------------------------------------------

SAMPLES = {"start": "2025-11-14", "end": "2025-11-15", "output": "s3://featurekit/offline", "input": "s3://featurekit/offline",
           "project": "my-project", "redis": "redis://redis:6379", "registry": "s3://featurekit/registry/registry.db",
           "offline-path": "s3://featurekit/offline", "materialized-start": "2025-11-14", "materialized-end": "2025-11-15",
           "feature-view": "user_transaction_features", "profile-out": "s3://featurekit/validation/profiles/2025-11-14.json",
           "report": "s3://featurekit/validation/reports/2025-11-14/", "baseline": "s3://featurekit/validation/profiles/2025-11-13.json"}


def commands(docs):
    out = []
    sample_globals = {"workflow.name": "feature-pipeline-2025-11-14", "workflow.uid": "0000",
                      "workflow.creationTimestamp.RFC3339": "2025-11-15T02:30:00Z"}
    for d in docs:
        if d.get("kind") != "WorkflowTemplate":
            continue
        for t in d["spec"]["templates"]:
            if "container" not in t:
                continue
            variants = [{}]
            names = [p["name"] for p in (t.get("inputs") or {}).get("parameters") or []]
            if "no-baseline" in names:
                variants = [{"no-baseline": "false"}, {"no-baseline": "true"}]
            for v in variants:
                scope = dict(sample_globals)
                for p in (t.get("inputs") or {}).get("parameters") or []:
                    val = v.get(p["name"], SAMPLES.get(p["name"], p.get("value")))
                    if val is None:
                        raise Unsupported(f"{d['metadata']['name']}: no sample for {p['name']}")
                    scope[f"inputs.parameters.{p['name']}"] = subst(str(val), scope)
                c = t["container"]
                env = [e["name"] for e in c.get("env") or []]
                out.append({"template": d["metadata"]["name"], "image": c["image"],
                            "argv": c["command"] + [subst(a, scope) for a in c.get("args") or []], "env": env})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--manifests", required=True)
    r.add_argument("--bin-dir", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--configmap", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"))
    r.add_argument("--configmap-file", nargs="+", action="append", default=[], metavar=("NAME", "KEY=PATH"))
    r.add_argument("--secret", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"))
    r.add_argument("--docker", metavar="DIR", help="run each pod as its image's container, DIR (holding --work and every store) mounted")
    r.add_argument("--stub-task", nargs=2, action="append", default=[], metavar=("TASK", "ARTIFACT=DIR"))
    r.add_argument("--submit", nargs="+", action="append", required=True, metavar=("TEMPLATE", "NAME=VALUE"),
                   help="a Workflow from this WorkflowTemplate, parameters NAME=VALUE (repeat: run one after the other)")
    c = sub.add_parser("commands")
    c.add_argument("--manifests", required=True)
    a = ap.parse_args()
    docs = [d for d in yaml.load_all(Path(a.manifests).read_text(), Loader=Loader) if d]
    if a.cmd == "commands":
        print(json.dumps(commands(docs), indent=1))
        return 0
    kv = lambda items: dict(i.split("=", 1) for i in items)
    cms = {}
    for name, *items in a.configmap:
        cms.setdefault(name, {}).update(kv(items))
    for name, *items in a.configmap_file:
        cms.setdefault(name + "#files", {}).update(kv(items))
    secrets = {}
    for name, *items in a.secret:
        secrets.setdefault(name, {}).update(kv(items))
    stubs = {}
    for task, art in a.stub_task:
        name, path = art.split("=", 1)
        stubs.setdefault(task, {})[name] = path
    cluster = Cluster(docs, a.bin_dir, a.work, cms, secrets, stubs, a.docker)
    runs = []
    for template, *params in a.submit:
        ps = kv(params)
        name = ps.pop("name", None) or f"{template}-{len(cluster.workflows)}"
        annotations = {}
        if "scheduled-time" in ps and ps.get("as-cron") == "true":
            ps.pop("as-cron")
            annotations["workflows.argoproj.io/scheduled-time"] = ps["scheduled-time"]
        wf = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
              "metadata": {"name": name, "annotations": annotations},
              "spec": {"workflowTemplateRef": {"name": template},
                       "arguments": {"parameters": [{"name": k, "value": v} for k, v in ps.items()]}}}
        runs.append(cluster.submit(wf)["name"])
    print(json.dumps({"runs": runs, "workflows": cluster.workflows, "metrics": cluster.metrics,
                      "configmaps": {k: v for k, v in cluster.configmaps.items() if not k.endswith("#files")}}, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Unsupported as e:
        print(f"unsupported: {e}", file=sys.stderr)
        sys.exit(3)
