//! The report: JSON for machines, a self-contained HTML page and a short Markdown summary for
//! people (no script, no CDN: the Argo UI shows it as an artifact).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::scan::Example;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub status: Status,
    pub spec_checksum: String,
    pub start: String,
    pub end: String,
    pub baseline: Option<String>,
    /// False on a first run (`--no-baseline`): no drift or volume-against-baseline rule ran.
    pub drift_checked: bool,
    /// The online store audited (`--online`, password hidden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<String>,
    pub views: Vec<ViewReport>,
}

/// What the report says of the baseline on a first run.
const NO_BASELINE: &str = "none (--no-baseline: drift and volume against a baseline not checked)";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewReport {
    pub view: String,
    pub status: Status,
    pub rows: u64,
    pub rules: Vec<RuleResult>,
    pub features: Vec<FeatureReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineReport>,
}

/// The online audit of one view: the sampled entities, what Redis served them, how fresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnlineReport {
    /// Entities with a row in the interval (the offline store).
    pub entities: u64,
    /// Sampled and read from Redis.
    pub checked: u64,
    /// Served exactly the row Feast's semantics say.
    pub matched: u64,
    /// No `_ts:<view>` in Redis.
    pub missing: u64,
    /// `_ts` older than the offline row.
    pub stale: u64,
    /// Same `_ts`, some value not the offline row's at the declared dtype.
    pub wrong: u64,
    /// `_ts` newer than the offline row, and no offline row of the entity has that time.
    pub not_offline: u64,
    /// Of `matched`: served a later run's row (newer than the interval's), found offline.
    pub newer: u64,
    /// (missing + stale + wrong + not_offline) / checked.
    pub mismatch_rate: f64,
    pub newest_ts: Option<String>,
    pub oldest_ts: Option<String>,
    /// Now minus the newest and the oldest sampled `_ts`.
    pub newest_age_seconds: Option<f64>,
    pub oldest_age_seconds: Option<f64>,
    /// Why everything is missing, when Redis tells (another key version or project).
    pub hint: Option<String>,
    /// The first mismatches, in sample order.
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mismatch {
    pub entity: String,
    /// `missing`, `stale`, `wrong` or `not_offline`.
    pub problem: String,
    /// The feature, or `_ts:<view>`.
    pub feature: String,
    pub offline: String,
    pub online: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: String,
    pub status: Status,
    /// What the rule requires.
    pub requires: String,
    /// What this run has.
    pub observed: String,
    pub violations: u64,
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureReport {
    pub feature: String,
    pub dtype: String,
    pub count: u64,
    pub nulls: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub psi: Option<f64>,
    pub null_rate: f64,
    pub baseline_null_rate: Option<f64>,
    /// Bin edges, and the fraction of values in each bin, this run's and the baseline's.
    pub bins: Vec<f64>,
    pub current: Vec<f64>,
    pub baseline: Option<Vec<f64>>,
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }

    /// The failing and warning rules, one line each.
    pub fn problems(&self) -> Vec<String> {
        self.views
            .iter()
            .flat_map(|v| {
                v.rules
                    .iter()
                    .filter(|r| r.status != Status::Pass)
                    .map(move |r| format!("{} {}.{}: {}", r.status.word(), v.view, r.rule, r.observed))
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## validate-features: {}\n", self.status.word().to_uppercase());
        let _ = writeln!(s, "Interval {} to {}; {}.\n", self.start, self.end, self.against());
        for v in &self.views {
            let _ = writeln!(s, "### {} ({} rows): {}\n", v.view, v.rows, v.status.word());
            let _ = writeln!(s, "| rule | status | requires | observed | violations |");
            let _ = writeln!(s, "|---|---|---|---|---:|");
            for r in worst_first(&v.rules) {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {} | {} |",
                    r.rule,
                    badge(r.status),
                    r.requires.replace('|', "\\|"),
                    r.observed.replace('|', "\\|"),
                    r.violations
                );
            }
            if let Some(o) = &v.online {
                o.markdown(&mut s);
            }
            let _ = writeln!(s);
        }
        s
    }

    /// What the run compared with: the baseline, or the online store.
    fn against(&self) -> String {
        match &self.online {
            Some(url) => format!("online store: {url}"),
            None => format!("baseline: {}", self.baseline.as_deref().unwrap_or(NO_BASELINE)),
        }
    }

    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>validate-features: {}</title><style>{}</style></head><body>",
            self.status.word(),
            CSS
        );
        let _ = write!(
            h,
            "<h1>validate-features <span class=\"{0}\">{1}</span></h1><p class=\"meta\">Interval <b>{2}</b> to <b>{3}</b> &middot; {4} &middot; spec {5}</p>",
            self.status.word(),
            self.status.word().to_uppercase(),
            esc(&self.start),
            esc(&self.end),
            esc(&self.against()),
            esc(&self.spec_checksum[..self.spec_checksum.len().min(12)])
        );
        for v in &self.views {
            let failing = v.rules.iter().filter(|r| r.status == Status::Fail).count();
            let warning = v.rules.iter().filter(|r| r.status == Status::Warn).count();
            let _ = write!(
                h,
                "<h2>{} <span class=\"{}\">{}</span></h2><p class=\"meta\">{} rows &middot; {} rules: {} failed, {} warned</p>",
                esc(&v.view),
                v.status.word(),
                v.status.word().to_uppercase(),
                v.rows,
                v.rules.len(),
                failing,
                warning
            );
            h.push_str("<table><tr><th>rule</th><th>status</th><th>requires</th><th>observed</th><th class=\"n\">violations</th></tr>");
            for r in worst_first(&v.rules) {
                let _ = write!(
                    h,
                    "<tr class=\"row-{}\"><td><code>{}</code></td><td><span class=\"{}\">{}</span></td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                    r.status.word(),
                    esc(&r.rule),
                    r.status.word(),
                    r.status.word(),
                    esc(&r.requires),
                    esc(&r.observed),
                    r.violations
                );
            }
            h.push_str("</table>");
            let offending: Vec<&RuleResult> = v.rules.iter().filter(|r| !r.examples.is_empty()).collect();
            if !offending.is_empty() {
                h.push_str("<h3>First offending rows</h3>");
                for r in offending {
                    let _ = write!(
                        h,
                        "<p><code>{}</code></p><table><tr><th>file</th><th class=\"n\">row</th><th>entity</th><th>event_timestamp</th><th>values</th></tr>",
                        esc(&r.rule)
                    );
                    for e in &r.examples {
                        let values: Vec<String> = e.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(&e.file),
                            e.row,
                            esc(&e.entity),
                            esc(&e.event_timestamp),
                            esc(&values.join(", "))
                        );
                    }
                    h.push_str("</table>");
                }
            }
            if let Some(o) = &v.online {
                o.html(&mut h);
            }
            if v.features.is_empty() {
                continue;
            }
            h.push_str("<h3>Features</h3><p class=\"meta\">Bars: this run. Orange line: the baseline. The fraction of the feature's values per bin, from the 1st to the 99th percentile (the end bars take the tails).</p><div class=\"grid\">");
            for f in &v.features {
                h.push_str("<figure>");
                h.push_str(&svg(f));
                let psi = f.psi.map_or("-".to_string(), |p| format!("{p:.3}"));
                let _ = write!(
                    h,
                    "<figcaption><b>{}</b> <small>{}</small><br>n {} &middot; nulls {} &middot; min {} &middot; p50 {} &middot; p99 {} &middot; max {} &middot; mean {} &middot; PSI {}</figcaption></figure>",
                    esc(&f.feature),
                    esc(&f.dtype),
                    f.count,
                    f.nulls,
                    num(f.min),
                    num(f.p50),
                    num(f.p99),
                    num(f.max),
                    num(f.mean),
                    psi
                );
            }
            h.push_str("</div>");
        }
        h.push_str("</body></html>\n");
        h
    }
}

impl OnlineReport {
    fn counts(&self) -> [(&'static str, String); 10] {
        let secs = |s: Option<f64>| s.map_or("-".into(), |s| crate::human(s as i64 * 1_000_000));
        [
            ("entities in the interval", self.entities.to_string()),
            ("checked (sampled)", self.checked.to_string()),
            (
                "matched",
                format!("{} ({} a later run's row)", self.matched, self.newer),
            ),
            ("missing", self.missing.to_string()),
            ("stale", self.stale.to_string()),
            ("wrong values", self.wrong.to_string()),
            ("newer than any offline row", self.not_offline.to_string()),
            ("mismatch rate", format!("{:.4}", self.mismatch_rate)),
            (
                "newest _ts",
                format!(
                    "{} ({} ago)",
                    self.newest_ts.as_deref().unwrap_or("-"),
                    secs(self.newest_age_seconds)
                ),
            ),
            (
                "oldest _ts",
                format!(
                    "{} ({} ago)",
                    self.oldest_ts.as_deref().unwrap_or("-"),
                    secs(self.oldest_age_seconds)
                ),
            ),
        ]
    }

    fn markdown(&self, s: &mut String) {
        let _ = writeln!(s, "\nOnline store against the offline store:\n");
        let _ = writeln!(s, "| | |\n|---|---:|");
        for (k, v) in self.counts() {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(s, "\nHint: {h}");
        }
        if !self.mismatches.is_empty() {
            let _ = writeln!(
                s,
                "\n| entity | problem | feature | offline | online |\n|---|---|---|---|---|"
            );
            for m in &self.mismatches {
                let _ = writeln!(
                    s,
                    "| {} | {} | `{}` | {} | {} |",
                    m.entity,
                    m.problem,
                    m.feature,
                    m.offline.replace('|', "\\|"),
                    m.online.replace('|', "\\|")
                );
            }
        }
    }

    fn html(&self, h: &mut String) {
        h.push_str("<h3>Online store</h3><table>");
        for (k, v) in self.counts() {
            let _ = write!(h, "<tr><th>{}</th><td class=\"n\">{}</td></tr>", esc(k), esc(&v));
        }
        h.push_str("</table>");
        if let Some(hint) = &self.hint {
            let _ = write!(h, "<p class=\"meta\">Hint: {}</p>", esc(hint));
        }
        if !self.mismatches.is_empty() {
            h.push_str("<h3>First mismatches</h3><table><tr><th>entity</th><th>problem</th><th>feature</th><th>offline</th><th>online</th></tr>");
            for m in &self.mismatches {
                let _ = write!(
                    h,
                    "<tr class=\"row-fail\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(&m.entity),
                    esc(&m.problem),
                    esc(&m.feature),
                    esc(&m.offline),
                    esc(&m.online)
                );
            }
            h.push_str("</table>");
        }
    }
}

fn badge(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "**warn**",
        Status::Fail => "**FAIL**",
    }
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) => short(v),
    }
}

/// A number for people: integral values without decimals, others with at most 4.
pub fn short(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Failures first, then warnings, then passes; the contract's order within each.
fn worst_first(rules: &[RuleResult]) -> Vec<&RuleResult> {
    let mut sorted: Vec<&RuleResult> = rules.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.status));
    sorted
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// This run's histogram as bars, the baseline's as a step line, on the same bins.
fn svg(f: &FeatureReport) -> String {
    let (w, h, pad) = (360.0, 150.0, 24.0);
    let n = f.current.len().max(1);
    let top = f
        .current
        .iter()
        .chain(f.baseline.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1e-9);
    let bw = (w - 2.0 * pad) / n as f64;
    let y = |v: f64| h - pad - v / top * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"histogram of {}\">",
        esc(&f.feature)
    );
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" class=\"axis\"/>",
        h - pad,
        w - pad
    );
    for (i, &v) in f.current.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar\"/>",
            y(v),
            (bw - 1.0).max(0.5),
            h - pad - y(v)
        );
    }
    if let Some(base) = &f.baseline {
        let mut d = String::new();
        for (i, &v) in base.iter().enumerate() {
            let x0 = pad + i as f64 * bw;
            let _ = write!(
                d,
                "{}{x0:.1},{:.1} L{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                y(v),
                x0 + bw,
                y(v)
            );
        }
        let _ = write!(s, "<path d=\"{d}\" class=\"base\"/>");
    }
    if let (Some(lo), Some(hi)) = (f.bins.first(), f.bins.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{}\" class=\"tick\">{}</text>",
            h - 6.0,
            num(Some(*lo))
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            w - pad,
            h - 6.0,
            num(Some(*hi))
        );
    }
    s.push_str("</svg>");
    s
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430;max-width:1200px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 4px}h3{font-size:15px;margin:20px 0 6px}\
.meta{color:#5b6575;margin:0 0 10px}table{border-collapse:collapse;margin:6px 0 12px;width:100%}\
th,td{border-bottom:1px solid #e3e6eb;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f7fa;font-weight:600}\
td.n,th.n{text-align:right}code{font-size:13px}\
.pass,.warn,.fail{display:inline-block;padding:0 8px;border-radius:10px;font-weight:600;font-size:12px}\
.pass{background:#e3f4e8;color:#1b6b34}.warn{background:#fff2d6;color:#8a5a00}.fail{background:#fde2e1;color:#a4161a}\
tr.row-fail td{background:#fff6f6}tr.row-warn td{background:#fffbf0}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}\
figure{margin:0;border:1px solid #e3e6eb;border-radius:6px;padding:8px}figcaption{font-size:12px;color:#3a4352}\
.bar{fill:#4c78a8}.base{fill:none;stroke:#f58518;stroke-width:2}.axis{stroke:#9aa3af}.tick{font-size:10px;fill:#5b6575}";
