#!/usr/bin/env python3
"""Checks Argo Workflows YAML without a cluster: every document against the vendored JSON Schema
(workflows/schema/) made strict (a field the schema does not list is an error), then the
cross-references and the controller's own rules that a schema cannot say.

  check.py [--schema FILE] FILE... ('-' reads stdin, e.g. `kubectl kustomize DIR | check.py -`)

Prints one line per problem and exits 1 when there is any, 2 when a file does not parse.

Schema: each document is checked against the definition of its kind, with
additionalProperties: false added to every object schema that lists properties, and
IntOrString/Quantity accepting numbers (the API server does; the published schema says string).
A v1 ConfigMap with the default-artifact-repository annotation has each entry checked as an
ArtifactRepository; other Kubernetes kinds are checked for apiVersion, kind and metadata.name only.

Cross-references: entrypoint, onExit, step and task templates resolve; templateRef and
workflowTemplateRef name a WorkflowTemplate of the files given (by metadata.name) holding that
template; a caller supplies every input its callee requires (parameters without a value or
default, artifacts without a source); {{tasks.X...}} and {{steps.X...}} name a sibling and an
output it declares; depends names sibling tasks; {{inputs.parameters.X}} and
{{inputs.artifacts.X}} are declared by the template using them; {{workflow.parameters.X}} is
declared by the workflow spec that runs the template (the one holding it, or the one whose
workflowTemplateRef brings it in); the manifests of resource templates are checked too.

Rules (what the controller's validation rejects, v4): CronWorkflow names at most 52 characters,
others 63; non-empty `schedules` of 5-field cron expressions; an IANA timezone; concurrencyPolicy,
retryPolicy, podGC/artifactGC strategies and gauge operations from their enums; the fields v4
removed (schedule, synchronization.mutex/semaphore, podPriority); a container template without
`command` (emissary needs it for a scratch image: an error here, a warning upstream); a
CronWorkflow without timezone; metric names ([a-zA-Z_][a-zA-Z0-9_]*) and one help per name.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import zoneinfo
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).resolve().parent
DEFAULT_SCHEMA = HERE.parent.parent / "workflows/schema/argo-v4.1.2.json"
ARGO = "argoproj.io/v1alpha1"
KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow", "WorkflowEventBinding")
DEF = "io.argoproj.workflow.v1alpha1."


class Loader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: no timestamps (2025-01-01 stays a string), no duplicate keys."""


Loader.yaml_implicit_resolvers = {
    c: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for c, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping(loader, node, deep=False):
    keys = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_all(text):
    return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]


# ---- schema ----------------------------------------------------------------------------------

def strict_schema(path):
    root = json.loads(Path(path).read_text())

    def close(s):
        if isinstance(s, dict):
            if "properties" in s:
                s.setdefault("additionalProperties", False)
            for k, v in s.items():
                if k == "properties":
                    for p in v.values():
                        close(p)
                elif k in ("items", "additionalProperties", "not", "if", "then", "else"):
                    close(v)
                elif k in ("allOf", "anyOf", "oneOf", "prefixItems"):
                    for p in v:
                        close(p)

    for d in root["definitions"].values():
        close(d)
    for name in ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", "io.k8s.apimachinery.pkg.api.resource.Quantity"):
        if name in root["definitions"]:
            root["definitions"][name] = {"type": ["string", "integer", "number"]}
    registry = Registry().with_resource(root["$id"], Resource(contents=root, specification=DRAFT202012))
    validators = {}

    def validator(definition):
        if definition not in validators:
            sub = {k: v for k, v in root.items() if k not in ("oneOf", "type")}
            sub["$ref"] = f"#/definitions/{definition}"
            validators[definition] = Draft202012Validator(sub, registry=registry)
        return validators[definition]

    return root, validator


def where(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<document>"


def deepest(err):
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


# ---- walking templates -----------------------------------------------------------------------

def wf_spec(doc):
    spec = doc.get("spec") or {}
    return (spec.get("workflowSpec") or {}) if doc.get("kind") == "CronWorkflow" else spec


def strings(o):
    if isinstance(o, str):
        yield o
    elif isinstance(o, dict):
        for v in o.values():
            yield from strings(v)
    elif isinstance(o, list):
        for v in o:
            yield from strings(v)


def calls(t):
    """The steps or tasks of a template, flattened."""
    if t.get("steps"):
        return [s for group in t["steps"] for s in (group or [])], "steps"
    if (t.get("dag") or {}).get("tasks"):
        return list(t["dag"]["tasks"]), "tasks"
    return [], None


OUT_REF = re.compile(r"(steps|tasks)(?:\.([A-Za-z0-9_-]+)|\['([A-Za-z0-9_-]+)'\])\.outputs\.(parameters|artifacts|result)(?:\.([A-Za-z0-9_-]+))?")
IN_REF = re.compile(r"inputs\.(parameters|artifacts)(?:\.([A-Za-z0-9_-]+)|\['([A-Za-z0-9_-]+)'\])")
WF_REF = re.compile(r"workflow\.parameters(?:\.([A-Za-z0-9_-]+)|\['([A-Za-z0-9_-]+)'\])")
TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
SOURCES = ("s3", "gcs", "http", "git", "raw", "artifactory", "hdfs", "oss", "azure", "plugin", "from", "fromExpression")
DEPENDS_WORD = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?")


def tags(o):
    for s in strings(o):
        for m in TAG.finditer(s):
            yield m.group(1)


class Checker:
    def __init__(self, schema):
        self.root, self.validator = strict_schema(schema)
        self.problems = []

    def add(self, label, msg):
        self.problems.append(f"{label}: {msg}")

    # schema
    def schema(self, label, doc):
        kind = doc.get("kind")
        if doc.get("apiVersion") == ARGO and kind in KINDS:
            for e in sorted(self.validator(DEF + kind).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
                d = deepest(e)
                self.add(label, f"{where(d.absolute_path)}: {d.message}")
            return True
        if doc.get("apiVersion") == ARGO:
            self.add(label, f"unknown Argo kind {kind!r}")
            return False
        md = doc.get("metadata") or {}
        if not (isinstance(doc.get("apiVersion"), str) and isinstance(kind, str) and md.get("name")):
            self.add(label, "a Kubernetes object needs apiVersion, kind and metadata.name")
        if kind == "ConfigMap" and "workflows.argoproj.io/default-artifact-repository" in (md.get("annotations") or {}):
            default = md["annotations"]["workflows.argoproj.io/default-artifact-repository"]
            data = doc.get("data") or {}
            if default not in data:
                self.add(label, f"the default artifact repository {default!r} is not one of its keys {sorted(data)}")
            for key, text in data.items():
                repo = yaml.load(text, Loader=Loader)
                for e in self.validator(DEF + "ArtifactRepository").iter_errors(repo):
                    d = deepest(e)
                    self.add(label, f"data.{key}.{where(d.absolute_path)}: {d.message}")
        return False

    # cross-references and rules over every Argo document of the set
    def set_checks(self, docs):
        templates = {}  # WorkflowTemplate name -> (doc, {template name: template})
        for label, d in docs:
            if d.get("kind") in ("WorkflowTemplate", "ClusterWorkflowTemplate"):
                name = (d.get("metadata") or {}).get("name")
                if not name:
                    self.add(label, "a WorkflowTemplate needs metadata.name (templateRef looks it up by name)")
                    continue
                templates[(d["kind"], name)] = (d, {t.get("name"): t for t in wf_spec(d).get("templates") or []})
        for label, d in docs:
            self.rules(label, d)
            self.xref(label, d, templates)
        self.metric_help(docs)

    def resolve(self, label, call, local, templates):
        if call.get("templateRef"):
            ref = call["templateRef"]
            kind = "ClusterWorkflowTemplate" if ref.get("clusterScope") else "WorkflowTemplate"
            holder = templates.get((kind, ref.get("name")))
            if holder is None:
                self.add(label, f"{call.get('name')!r}: templateRef {ref.get('name')!r} is no {kind} of the files given")
                return None, None
            t = holder[1].get(ref.get("template"))
            if t is None:
                self.add(label, f"{call.get('name')!r}: {kind} {ref.get('name')!r} has no template {ref.get('template')!r}")
            return t, holder
        if call.get("template"):
            t = local.get(call["template"])
            if t is None:
                self.add(label, f"{call.get('name')!r}: template {call['template']!r} is not defined here")
            return t, None
        if call.get("inline"):
            return call["inline"], None
        self.add(label, f"{call.get('name')!r} calls no template")
        return None, None

    def xref(self, label, d, templates, declared_globals=None):
        kind = d.get("kind")
        if kind not in ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"):
            return
        spec = wf_spec(d)
        md = d.get("metadata") or {}
        label = f"{label} {kind}/{md.get('name') or md.get('generateName')}"
        local = {t.get("name"): t for t in spec.get("templates") or []}
        wtr = spec.get("workflowTemplateRef")
        args = {p.get("name") for p in (spec.get("arguments") or {}).get("parameters") or []}
        if wtr:
            holder = templates.get(("ClusterWorkflowTemplate" if wtr.get("clusterScope") else "WorkflowTemplate", wtr.get("name")))
            if holder is None:
                self.add(label, f"workflowTemplateRef {wtr.get('name')!r} is no WorkflowTemplate of the files given")
                return
            hspec = wf_spec(holder[0])
            theirs = {p.get("name"): p for p in (hspec.get("arguments") or {}).get("parameters") or []}
            for name in args - set(theirs):
                self.add(label, f"argument {name!r} is not a parameter of WorkflowTemplate {wtr['name']!r}")
            for name, p in theirs.items():
                if not any(k in p for k in ("value", "default", "valueFrom", "enum")) and name not in args:
                    self.add(label, f"does not give {wtr['name']!r}'s required parameter {name!r}")
            if spec.get("templates") or spec.get("entrypoint"):
                self.add(label, "has templates or an entrypoint beside workflowTemplateRef")
        else:
            ep = spec.get("entrypoint")
            if kind in ("Workflow", "CronWorkflow") and not ep:
                self.add(label, "no entrypoint")
            if ep and ep not in local:
                self.add(label, f"entrypoint {ep!r} is not one of its templates {sorted(local)}")
            if spec.get("onExit") and spec["onExit"] not in local:
                self.add(label, f"onExit template {spec['onExit']!r} is not defined")
            if ep in local and kind in ("Workflow", "CronWorkflow"):
                self.entry_inputs(label, local[ep], spec)
        globals_ = args if declared_globals is None else declared_globals
        seen = set()
        for tname, t in local.items():
            self.template_refs(label, tname, t, local, templates, globals_ if kind != "ClusterWorkflowTemplate" else set(), seen)
        # resource templates' manifests are documents too
        for tname, t in local.items():
            manifest = (t.get("resource") or {}).get("manifest")
            if manifest:
                for i, sub in enumerate(load_all(manifest)):
                    sub_label = f"{label} template {tname!r} manifest#{i}"
                    if self.schema(sub_label, _placeholder_free(sub)):
                        self.rules(sub_label, sub)
                        self.xref(sub_label, sub, templates)

    def entry_inputs(self, label, t, spec):
        given = {p.get("name") for p in (spec.get("arguments") or {}).get("parameters") or []}
        for p in (t.get("inputs") or {}).get("parameters") or []:
            if not any(k in p for k in ("value", "default", "valueFrom")) and p.get("name") not in given:
                self.add(label, f"entrypoint {t.get('name')!r} needs parameter {p.get('name')!r}, which spec.arguments does not give")

    def template_refs(self, label, tname, t, local, templates, globals_, seen):
        where_ = f"{label} template {tname!r}"
        declared = {
            "parameters": {p.get("name") for p in (t.get("inputs") or {}).get("parameters") or []},
            "artifacts": {a.get("name") for a in (t.get("inputs") or {}).get("artifacts") or []},
        }
        for expr in tags(t):
            for what, a, b in IN_REF.findall(expr):
                if (a or b) not in declared[what]:
                    self.add(where_, f"uses inputs.{what}.{a or b}, which it does not declare")
            for a, b in WF_REF.findall(expr):
                if (a or b) not in globals_:
                    self.add(where_, f"uses workflow.parameters.{a or b}, which the workflow spec does not declare")
        steps, scope = calls(t)
        if not scope:
            return
        siblings = {s.get("name"): s for s in steps}
        targets = {}
        for s in steps:
            callee, holder = self.resolve(where_, s, local, templates)
            targets[s.get("name")] = callee
            if callee is None:
                continue
            if holder is not None:
                # a template brought in by templateRef: its own references are checked in its file,
                # but it must not lean on the caller's workflow parameters implicitly
                for expr in tags(callee):
                    for a, b in WF_REF.findall(expr):
                        self.add(where_, f"{s.get('name')!r}: templateRef'd {callee.get('name')!r} uses "
                                 f"workflow.parameters.{a or b}; pass it as an input instead")
            args = s.get("arguments") or {}
            given_p = {p.get("name") for p in args.get("parameters") or []}
            given_a = {x.get("name") for x in args.get("artifacts") or []}
            want_p = {p.get("name"): p for p in (callee.get("inputs") or {}).get("parameters") or []}
            want_a = {x.get("name"): x for x in (callee.get("inputs") or {}).get("artifacts") or []}
            for name, p in want_p.items():
                if not any(k in p for k in ("value", "default", "valueFrom")) and name not in given_p:
                    self.add(where_, f"{s.get('name')!r} does not give input parameter {name!r}")
            for name, x in want_a.items():
                if not x.get("optional") and not any(k in x for k in SOURCES) and name not in given_a:
                    self.add(where_, f"{s.get('name')!r} does not give input artifact {name!r}")
            for name in given_p - set(want_p):
                self.add(where_, f"{s.get('name')!r} gives parameter {name!r}, which {callee.get('name')!r} does not declare")
            for name in given_a - set(want_a):
                self.add(where_, f"{s.get('name')!r} gives artifact {name!r}, which {callee.get('name')!r} does not declare")
        if scope == "tasks":
            for s in steps:
                deps = list(s.get("dependencies") or [])
                deps += [w.split(".")[0] for w in DEPENDS_WORD.findall(s.get("depends") or "")]
                for dep in deps:
                    if dep not in siblings:
                        self.add(where_, f"task {s.get('name')!r} depends on unknown task {dep!r}")
                    elif dep == s.get("name"):
                        self.add(where_, f"task {dep!r} depends on itself")
        for expr in tags(t):
            for sc, a, b, what, out in OUT_REF.findall(expr):
                name = a or b
                if sc != scope:
                    self.add(where_, f"a {scope} template refers to {sc}.{name}")
                elif name not in siblings:
                    self.add(where_, f"refers to {sc}.{name}, which is not one of its {scope}")
                elif targets.get(name) is not None and what != "result":
                    outs = {o.get("name") for o in ((targets[name].get("outputs") or {}).get(what) or [])}
                    if out not in outs:
                        self.add(where_, f"{sc}.{name}.outputs.{what}.{out}: {name!r} declares {sorted(outs)}")

    def rules(self, label, d):
        kind = d.get("kind")
        if d.get("apiVersion") != ARGO:
            return
        md = d.get("metadata") or {}
        spec = d.get("spec") or {}
        name = md.get("name") or ""
        limit = 52 if kind == "CronWorkflow" else 63
        if len(name) > limit:
            self.add(label, f"name {name!r} is longer than {limit} characters")
        if kind == "CronWorkflow":
            if "schedule" in spec:
                self.add(label, "`schedule` was removed in v4.0: use `schedules`")
            if not spec.get("schedules"):
                self.add(label, "`schedules` must be a non-empty list")
            for s in spec.get("schedules") or []:
                err = cron_error(s)
                if err:
                    self.add(label, f"schedule {s!r}: {err}")
            tz = spec.get("timezone")
            if not tz:
                self.add(label, "no timezone: the schedules would follow the controller's local time")
            else:
                try:
                    zoneinfo.ZoneInfo(tz)
                except Exception:
                    self.add(label, f"timezone {tz!r} is not an IANA name")
            if spec.get("concurrencyPolicy") not in (None, "Allow", "Forbid", "Replace"):
                self.add(label, f"concurrencyPolicy {spec['concurrencyPolicy']!r} is not Allow, Forbid or Replace")
            if (spec.get("startingDeadlineSeconds") or 0) < 0:
                self.add(label, "startingDeadlineSeconds is negative")
        ws = wf_spec(d)
        holders = [("spec", ws)] + [(f"template {t.get('name')!r}", t) for t in ws.get("templates") or []]
        for what, h in holders:
            sync = h.get("synchronization") or {}
            for old, new in (("mutex", "mutexes"), ("semaphore", "semaphores")):
                if old in sync:
                    self.add(label, f"{what}: synchronization.{old} was removed in v4.0: use {new}")
        if "podPriority" in ws:
            self.add(label, "podPriority was removed in v4.0: use podPriorityClassName")
        for t in ws.get("templates") or []:
            c = t.get("container")
            if isinstance(c, dict) and not c.get("command"):
                self.add(label, f"template {t.get('name')!r}: a container without `command` (emissary would have to ask the registry)")
        for path, value, allowed in enums(ws):
            if value not in allowed:
                self.add(label, f"{path}: {value!r} is not one of {sorted(allowed)}")
        for m in metrics(ws):
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", m.get("name") or ""):
                self.add(label, f"metric name {m.get('name')!r} is not [a-zA-Z_][a-zA-Z0-9_]*")

    def metric_help(self, docs):
        helps = {}
        for label, d in docs:
            for m in metrics(wf_spec(d)):
                kind = next((k for k in ("counter", "gauge", "histogram") if k in m), None)
                seen = helps.setdefault(m.get("name"), (m.get("help"), kind, label))
                if seen[:2] != (m.get("help"), kind):
                    self.add(label, f"metric {m.get('name')!r} has another help or type than in {seen[2]} (Prometheus refuses that)")


def metrics(ws):
    for h in [ws] + list(ws.get("templates") or []):
        yield from ((h.get("metrics") or {}).get("prometheus") or [])


ENUMS = {
    "retryPolicy": {"Always", "OnFailure", "OnError", "OnTransientError"},
    "podGC": {"OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess"},
    "artifactGC": {"OnWorkflowCompletion", "OnWorkflowDeletion", "Never", ""},
    "gauge": {"Set", "Add", "Sub"},
}


def enums(o, path=""):
    if isinstance(o, dict):
        for k, v in o.items():
            p = f"{path}.{k}" if path else k
            if k == "retryPolicy" and isinstance(v, str):
                yield p, v, ENUMS[k]
            if k in ("podGC", "artifactGC") and isinstance(v, dict) and "strategy" in v:
                yield f"{p}.strategy", v["strategy"], ENUMS[k]
            if k == "gauge" and isinstance(v, dict) and "operation" in v:
                yield f"{p}.operation", v["operation"], ENUMS[k]
            if k != "manifest":
                yield from enums(v, p)
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from enums(v, f"{path}[{i}]")


CRON = [(0, 59, None), (0, 23, None), (1, 31, None),
        (1, 12, "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()),
        (0, 6, "SUN MON TUE WED THU FRI SAT".split())]


def cron_error(expr):
    """None when expr parses as robfig/cron's ParseStandard would take it, else why not."""
    e = expr.strip()
    if e.startswith("@"):
        ok = e in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
        return None if ok or re.fullmatch(r"@every\s+(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", e) else f"unknown descriptor {e!r}"
    fields = e.split()
    if len(fields) != 5:
        return f"{len(fields)} fields, not 5 (minute hour day-of-month month day-of-week)"

    def value(tok, lo, hi, names):
        if names and tok.upper() in names:
            return names.index(tok.upper()) + lo
        if not tok.isdigit() or not lo <= int(tok) <= hi:
            raise ValueError(f"{tok!r} is not in {lo}-{hi}")
        return int(tok)

    for (lo, hi, names), field in zip(CRON, fields):
        for item in field.split(","):
            rng, _, step = item.partition("/")
            try:
                if step and (not step.isdigit() or int(step) == 0):
                    raise ValueError(f"step {step!r}")
                if rng in ("*", "?"):
                    continue
                a, _, b = rng.partition("-")
                if b and value(b, lo, hi, names) < value(a, lo, hi, names):
                    raise ValueError(f"range {rng!r} runs backwards")
                value(a, lo, hi, names)
            except ValueError as ex:
                return f"field {field!r}: {ex}"
    return None


def _placeholder_free(doc):
    """A resource manifest's document as the schema sees it once Argo substituted it (the
    placeholders are strings already, so nothing changes): a copy, to keep the walk pure."""
    return copy.deepcopy(doc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    a = ap.parse_args(argv)
    checker = Checker(a.schema)
    docs = []
    for f in a.files:
        try:
            text = sys.stdin.read() if f == "-" else Path(f).read_text()
            loaded = load_all(text)
        except (yaml.YAMLError, OSError) as e:
            print(f"{f}: does not parse: {e}")
            return 2
        for i, d in enumerate(loaded):
            label = f"{f}#{i}"
            if not isinstance(d, dict):
                checker.add(label, "a document must be a mapping")
                continue
            if checker.schema(label, d):
                docs.append((label, d))
    checker.set_checks(docs)
    for p in checker.problems:
        print(p)
    print(f"-- {len(docs)} Argo documents, {len(checker.problems)} problem(s), schema {Path(a.schema).name}")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
