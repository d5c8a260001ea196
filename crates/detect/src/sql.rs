//! `kaq detect --sql`: each rule as one SQL statement (DuckDB, Spark SQL, Trino) whose rows are
//! the rule's alerts over kaq's Parquet schema — the same alerts [`crate::run`] makes, exactly:
//!
//! - the rows a rule's query matches come from [`kaq_sql::translate_rows`] (the latest stage of
//!   each request, its identity key, every construct of the language), one set per step;
//! - `_hits` holds them as the engine's [`Hit`](crate::engine::Hit)s: time in µs, step, auditID,
//!   the group's values as text (absent: empty text), the counted field of `dc(FIELD)`;
//! - each kind finds its triggers and the evidence of each as [`crate::engine`] does, with window
//!   functions over `RANGE` frames in µs (a sliding window `(t − w, t]` is
//!   `RANGE BETWEEN w − 1 PRECEDING AND CURRENT ROW`);
//! - triggers of a group closer than `suppress` to the evidence of the alert before join it
//!   ([`crate::engine::cluster`]), as running sums over the triggers in time order;
//! - one row per alert: rule, severity, kind, the group's fields, count, first, last, the time the
//!   first trigger fired, and the evidence's auditIDs in time order (all of them).
//!
//! What a dialect cannot do exactly is refused with a message naming the rule, the construct and
//! the dialect.

use std::collections::HashMap;

use kaq_sql::Dialect;

use crate::rules::{Kind, Metric, Spike};
use crate::{Bounds, Prepared};

/// The header comment of a rule's statement: `-- rule: ID (kind, severity)`.
pub fn header(p: &Prepared) -> String {
    format!("-- rule: {} ({}, {})", p.rule.id, p.rule.kind.name(), p.rule.severity)
}

/// The statement whose rows are `p`'s alerts over `opts.source` for `bounds`, or why it cannot be
/// written exactly in `opts.dialect` (a message naming the construct and the dialect; the caller
/// names the rule).
pub fn statement(
    p: &mut Prepared,
    macros: &HashMap<String, String>,
    bounds: &Bounds,
    opts: &kaq_sql::Options,
) -> Result<String, String> {
    p.compile_for(macros, bounds).map_err(|e| e.message)?;
    let d = opts.dialect;
    let mut b = Builder { ctes: Vec::new() };
    let n_group = match &p.rule.kind {
        Kind::FirstSeen { fields, .. } => p.rule.group_by.len() + fields.len(),
        _ => p.rule.group_by.len(),
    };
    let dc = matches!(&p.rule.kind, Kind::Threshold { metric: Metric::Dc(_), .. });
    let g: Vec<String> = (0..n_group).map(|i| format!("_g{i}")).collect();
    let mut data_start = String::new();
    let mut parts = Vec::new();
    for (step, (_, plan)) in p.queries.iter().enumerate() {
        let rows = kaq_sql::translate_rows(plan, opts, &format!("_s{step}_")).map_err(|e| e.message)?;
        b.ctes.extend(rows.ctes.iter().cloned());
        let mut sel = vec![format!("{} AS _t", rows.time), format!("{step} AS _st")];
        let mut cols = rows.columns.iter();
        sel.push(format!("coalesce({}, '') AS _id", cols.next().expect("the table has an id")));
        for gi in &g {
            sel.push(format!("coalesce({}, '') AS {gi}", cols.next().expect("a column per group field")));
        }
        if dc {
            sel.push(format!("{} AS _v", cols.next().expect("the counted field")));
        }
        parts.push(format!("SELECT {} FROM {} WHERE {} IS NOT NULL", sel.join(", "), rows.from, rows.time));
        data_start = rows.data_start;
    }
    b.cte("_hits", parts.join(" UNION ALL "));
    let since = bounds.since;
    let since_cond = |t: &str| since.map(|s| format!(" AND {t} >= {s}")).unwrap_or_default();
    let part = if g.is_empty() { String::new() } else { format!("PARTITION BY {} ", g.join(", ")) };
    let gl = |prefix: &str| g.iter().map(|x| format!("{prefix}{x}, ")).collect::<String>();
    let on = |a: &str, c: &str| {
        let mut conds: Vec<String> = g.iter().map(|x| format!("{a}.{x} = {c}.{x}")).collect();
        if conds.is_empty() {
            conds.push("TRUE".into());
        }
        conds.join(" AND ")
    };
    let sup = p.rule.suppress;
    let gs = gl("");
    // Each kind leaves `_cov` (the evidence: G…, _c, _t, _st, _id; one row per hit of an alert's
    // evidence, _c numbering the alerts of a group) and `_fire` (G…, _c, _fired).
    match &p.rule.kind {
        Kind::Single => {
            b.cte(
                "_tr",
                format!(
                    "SELECT {gs}_t, _st, _id, CASE WHEN _p IS NULL OR _t > _p + {sup} THEN 1 ELSE 0 END AS _new FROM (SELECT {gs}_t, _st, _id, lag(_t) OVER ({part}ORDER BY _t) AS _p FROM _hits WHERE TRUE{}) _x",
                    since_cond("_t")
                ),
            );
            // Peers (equal times) share one running sum: a RANGE frame.
            b.cte(
                "_cov",
                format!(
                    "SELECT {gs}_t, _st, _id, sum(_new) OVER ({part}ORDER BY _t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _c FROM _tr"
                ),
            );
            b.cte("_fire", format!("SELECT {gs}_c, min(_t) AS _fired FROM _cov GROUP BY {gs}_c"));
        }
        Kind::Threshold { window, metric, n } => {
            let frame = format!("OVER ({part}ORDER BY _t RANGE BETWEEN {} PRECEDING AND CURRENT ROW)", window - 1);
            let m = match metric {
                Metric::Count => format!("count(*) {frame}"),
                Metric::Dc(_) => match d {
                    Dialect::DuckDb => format!("count(DISTINCT _v) {frame}"),
                    Dialect::Spark => format!("size(collect_set(_v) {frame})"),
                    Dialect::Trino => {
                        format!("cardinality(array_distinct(filter(array_agg(_v) {frame}, _y -> _y IS NOT NULL)))")
                    }
                },
            };
            b.cte("_w", format!("SELECT {gs}_t, _st, _id, {m} AS _m, min(_t) {frame} AS _ws FROM _hits"));
            let fires = format!("_m >= {n}{}", since_cond("_t"));
            trigger_batches(
                &mut b,
                &gs,
                &part,
                &format!("SELECT DISTINCT {gs}_t, _ws AS _e0, _t AS _e1 FROM _w WHERE {fires}"),
                sup,
            );
            b.cte(
                "_nx",
                format!(
                    "SELECT {gs}_t, _st, _id, min(CASE WHEN {fires} THEN _t END) OVER ({part}ORDER BY _t RANGE BETWEEN CURRENT ROW AND {} FOLLOWING) AS _nt FROM _w",
                    window - 1
                ),
            );
            cover_by_batch(&mut b, &gs, &on("_nx", "_tc"));
        }
        Kind::FirstSeen { lookback, learn, window, .. } => {
            let learn_from = match since {
                Some(s) => s.to_string(),
                None => format!("({data_start} + {learn})"),
            };
            b.cte(
                "_w",
                format!(
                    "SELECT {gs}_t, _st, _id, max(_t) OVER ({part}ORDER BY _t RANGE BETWEEN {lookback} PRECEDING AND 1 PRECEDING) AS _seen, max(_t) OVER ({part}ORDER BY _t RANGE BETWEEN CURRENT ROW AND {window} FOLLOWING) AS _le FROM _hits"
                ),
            );
            let fires = format!("_seen IS NULL AND _t >= {learn_from}{}", since_cond("_t"));
            trigger_batches(
                &mut b,
                &gs,
                &part,
                &format!("SELECT DISTINCT {gs}_t, _t AS _e0, _le AS _e1 FROM _w WHERE {fires}"),
                sup,
            );
            b.cte(
                "_nx",
                format!(
                    "SELECT {gs}_t, _st, _id, max(CASE WHEN {fires} THEN _t END) OVER ({part}ORDER BY _t RANGE BETWEEN {window} PRECEDING AND CURRENT ROW) AS _nt FROM _w"
                ),
            );
            cover_by_batch(&mut b, &gs, &on("_nx", "_tc"));
        }
        Kind::Spike(s) => {
            let steps = decay_steps(s).map_err(|m| format!("spike: {m}"))?;
            if d == Dialect::Trino && steps > 10_000 {
                return Err(format!(
                    "spike with alpha {}: the baseline decays over up to {steps} empty buckets one multiplication at a time, more than Trino's sequence() holds (10000): not expressible in trino SQL by kaq detect --sql",
                    s.alpha
                ));
            }
            let w = s.bucket;
            let bucket = format!("_t - (((_t % {w}) + {w}) % {w})");
            let first_since = match since {
                Some(lo) => format!("min(CASE WHEN _t >= {lo} THEN _t END)"),
                None => "min(_t)".into(),
            };
            b.cte(
                "_bk",
                format!(
                    "SELECT {gs}{} AS _b, count(*) AS _n, min(_t) AS _ft, max(_t) AS _lt, {first_since} AS _fs FROM _hits GROUP BY {gs}{}",
                    d_int_div(d, &format!("({bucket})"), w),
                    d_int_div(d, &format!("({bucket})"), w)
                ),
            );
            let group = if g.is_empty() { String::new() } else { format!(" GROUP BY {}", g.join(", ")) };
            b.cte("_fold", format!("SELECT {gs}{} AS _fired FROM _bk{group}", spike_fold(d, s, steps)));
            let unnest = d.unnest_join("_fold._fired", "_u", "_fb");
            b.cte("_fbs", format!("SELECT {} _fb FROM _fold{unnest}", gl("_fold.")));
            b.cte(
                "_tb",
                format!(
                    "SELECT {}_bk._b, _bk._n, _bk._ft AS _e0, _bk._lt AS _e1, _bk._lt AS _t, _bk._fs FROM _bk JOIN _fbs ON {} AND _bk._b = _fbs._fb WHERE TRUE{}",
                    gl("_bk."),
                    on("_bk", "_fbs"),
                    since_cond("_bk._lt")
                ),
            );
            clusters(&mut b, &gs, &part, "_tb", "_b", sup);
            b.cte(
                "_cov",
                format!(
                    "SELECT {}_tc._c, _hits._t, _hits._st, _hits._id FROM _hits JOIN _tc ON {} AND {} = _tc._b",
                    gl("_hits."),
                    on("_hits", "_tc"),
                    d_int_div(d, &format!("({})", bucket.replace("_t", "_hits._t")), w)
                ),
            );
            b.cte("_fire", format!("SELECT {gs}_c, min(_fs) AS _fired FROM _tc GROUP BY {gs}_c"));
        }
        Kind::Sequence { steps, window } => {
            let n = steps.len();
            // _k tells apart hits equal in group, step, time and auditID (a reused auditID).
            b.cte("_hk", format!("SELECT {gs}_t, _st, _id, row_number() OVER (PARTITION BY {gs}_st, _t, _id ORDER BY _t) AS _k FROM _hits"));
            // Level i: the chains of steps 0..=i, one per hit of step i that completes one: its
            // start `_s` and each step's hit (_eJt, _eJi, _eJk). A hit of step i takes the chain of
            // level i − 1 completed strictly before it with the latest start (ties: the one the
            // engine met last), if it is within the window of its start.
            let e = |j: usize| format!("_e{j}t, _e{j}i, _e{j}k");
            b.cte(
                "_l0",
                format!("SELECT {gs}_t, _id, _k, _t AS _s, _t AS _e0t, _id AS _e0i, _k AS _e0k FROM _hk WHERE _st = 0"),
            );
            for i in 1..n {
                let prev_e: Vec<String> = (0..i).map(e).collect();
                // The hits of step i carry no chain yet: typed NULLs in its columns.
                let st = d.string_type();
                let nulls: Vec<String> = (0..i)
                    .map(|j| {
                        format!(
                            "CAST(NULL AS BIGINT) AS _e{j}t, CAST(NULL AS {st}) AS _e{j}i, CAST(NULL AS BIGINT) AS _e{j}k"
                        )
                    })
                    .collect();
                b.cte(
                    &format!("_u{i}"),
                    format!(
                        "SELECT {gs}_t, _id, _k, 1 AS _me, CAST(NULL AS BIGINT) AS _s, {} FROM _hk WHERE _st = {i} UNION ALL SELECT {gs}_t, _id, _k, 0 AS _me, _s, {} FROM _l{}",
                        nulls.join(", "),
                        prev_e.join(", "),
                        i - 1
                    ),
                );
                // The chain as a struct ordered by (start, time, auditID, _k) of its last hit.
                let mut fields: Vec<(String, String, &str)> = vec![
                    ("s".into(), "_s".into(), "BIGINT"),
                    ("t".into(), format!("_e{}t", i - 1), "BIGINT"),
                    ("i".into(), format!("_e{}i", i - 1), "STRING"),
                    ("k".into(), format!("_e{}k", i - 1), "BIGINT"),
                ];
                for j in 0..i - 1 {
                    fields.push((format!("e{j}t"), format!("_e{j}t"), "BIGINT"));
                    fields.push((format!("e{j}i"), format!("_e{j}i"), "STRING"));
                    fields.push((format!("e{j}k"), format!("_e{j}k"), "BIGINT"));
                }
                b.cte(
                    &format!("_x{i}"),
                    format!(
                        "SELECT {gs}_t, _id, _k, _me, max(CASE WHEN _me = 0 THEN {} END) OVER ({part}ORDER BY _t RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS _ch FROM _u{i}",
                        d_struct(d, &fields)
                    ),
                );
                let mut carried = vec![format!("_ch.t AS _e{}t, _ch.i AS _e{}i, _ch.k AS _e{}k", i - 1, i - 1, i - 1)];
                for j in 0..i - 1 {
                    carried.push(format!("_ch.e{j}t AS _e{j}t, _ch.e{j}i AS _e{j}i, _ch.e{j}k AS _e{j}k"));
                }
                b.cte(
                    &format!("_l{i}"),
                    format!(
                        "SELECT {gs}_t, _id, _k, _ch.s AS _s, {}, _t AS _e{i}t, _id AS _e{i}i, _k AS _e{i}k FROM _x{i} WHERE _me = 1 AND _ch IS NOT NULL AND _t - _ch.s <= {window}",
                        carried.join(", ")
                    ),
                );
            }
            let last = n - 1;
            b.cte(
                "_tc",
                format!(
                    "SELECT *, sum(CASE WHEN _p IS NULL OR _s > _p + {sup} THEN 1 ELSE 0 END) OVER ({part}ORDER BY _t, _id, _k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _c FROM (SELECT *, lag(_t) OVER ({part}ORDER BY _t, _id, _k) AS _p FROM _l{last} WHERE TRUE{}) _x",
                    since_cond("_t")
                ),
            );
            let ev: Vec<String> = (0..n)
                .map(|j| format!("SELECT {gs}_c, _e{j}t AS _t, {j} AS _st, _e{j}i AS _id, _e{j}k AS _k FROM _tc"))
                .collect();
            b.cte("_cov", format!("SELECT DISTINCT {gs}_c, _t, _st, _id, _k FROM ({}) _x", ev.join(" UNION ALL ")));
            b.cte("_fire", format!("SELECT {gs}_c, min(_t) AS _fired FROM _tc GROUP BY {gs}_c"));
        }
    }
    let ids = match d {
        Dialect::DuckDb => "list(_id ORDER BY _t, _st, _id)".to_string(),
        Dialect::Trino => "array_agg(_id ORDER BY _t, _st, _id)".to_string(),
        Dialect::Spark => {
            "transform(array_sort(collect_list(named_struct('t', _t, 's', _st, 'i', _id))), _y -> _y.i)".to_string()
        }
    };
    b.cte(
        "_al",
        format!("SELECT {gs}_c, count(*) AS _n, min(_t) AS _first, max(_t) AS _last, {ids} AS _ids FROM _cov GROUP BY {gs}_c"),
    );
    let names: Vec<&String> = match &p.rule.kind {
        Kind::FirstSeen { fields, .. } => p.rule.group_by.iter().chain(fields).collect(),
        _ => p.rule.group_by.iter().collect(),
    };
    const FIXED: [&str; 9] = ["rule", "severity", "kind", "count", "window", "first", "last", "fired", "auditIDs"];
    let mut out = vec![
        format!("{} AS {}", d.str(&p.rule.id), d.ident("rule")),
        format!("{} AS {}", d.str(p.rule.severity.as_str()), d.ident("severity")),
        format!("{} AS {}", d.str(p.rule.kind.name()), d.ident("kind")),
    ];
    for (x, name) in g.iter().zip(&names) {
        let col = if FIXED.contains(&name.as_str()) { format!("group_{name}") } else { name.to_string() };
        out.push(format!("_al.{x} AS {}", d.ident(&col)));
    }
    let window = match &p.rule.kind {
        Kind::Single => None,
        Kind::Threshold { window, .. } | Kind::Sequence { window, .. } => Some(*window),
        Kind::FirstSeen { lookback, .. } => Some(*lookback),
        Kind::Spike(s) => Some(s.bucket),
    };
    out.push(format!("_al._n AS {}", d.ident("count")));
    out.push(format!(
        "{} AS {}",
        window.map_or_else(|| d.null_str(), |w| d.str(&crate::format_duration(w))),
        d.ident("window")
    ));
    out.push(format!("{} AS {}", d.timestamp("_al._first"), d.ident("first")));
    out.push(format!("{} AS {}", d.timestamp("_al._last"), d.ident("last")));
    out.push(format!("{} AS {}", d.timestamp("_fire._fired"), d.ident("fired")));
    out.push(format!("_al._ids AS {}", d.ident("auditIDs")));
    let mut join_on: Vec<String> = g.iter().map(|x| format!("_al.{x} = _fire.{x}")).collect();
    join_on.push("_al._c = _fire._c".into());
    let order: Vec<String> =
        std::iter::once("_al._first".to_string()).chain(g.iter().map(|x| format!("_al.{x}"))).collect();
    let mut sql = String::from("WITH\n");
    let n = b.ctes.len();
    for (i, (name, body)) in b.ctes.iter().enumerate() {
        sql.push_str(&format!("{name} AS (\n  {body}\n){}\n", if i + 1 < n { "," } else { "" }));
    }
    sql.push_str(&format!(
        "SELECT {}\nFROM _al JOIN _fire ON {}\nORDER BY {}",
        out.join(", "),
        join_on.join(" AND "),
        order.join(", ")
    ));
    Ok(sql)
}

struct Builder {
    ctes: Vec<(String, String)>,
}

impl Builder {
    fn cte(&mut self, name: &str, body: String) {
        self.ctes.push((name.to_string(), body));
    }
}

fn d_int_div(d: Dialect, a: &str, b: i64) -> String {
    d.int_div(a, &b.to_string())
}

/// A struct of named fields (types for Trino's ROW; `STRING` is each dialect's string type).
fn d_struct(d: Dialect, fields: &[(String, String, &str)]) -> String {
    match d {
        Dialect::DuckDb => {
            let f: Vec<String> = fields.iter().map(|(n, e, _)| format!("'{n}': {e}")).collect();
            format!("{{{}}}", f.join(", "))
        }
        Dialect::Spark => {
            let f: Vec<String> = fields.iter().map(|(n, e, _)| format!("'{n}', {e}")).collect();
            format!("named_struct({})", f.join(", "))
        }
        Dialect::Trino => {
            let e: Vec<&str> = fields.iter().map(|(_, e, _)| e.as_str()).collect();
            let t: Vec<String> =
                fields.iter().map(|(n, _, t)| format!("{n} {}", if *t == "STRING" { "VARCHAR" } else { t })).collect();
            format!("CAST(ROW({}) AS ROW({}))", e.join(", "), t.join(", "))
        }
    }
}

/// `_tb` (G…, _t, _e0, _e1: the triggers' batches, one row per group and time, with the first
/// and last time of their evidence) numbered into alerts in `_tc`.
fn trigger_batches(b: &mut Builder, gs: &str, part: &str, body: &str, sup: i64) {
    b.cte("_tb", body.to_string());
    clusters(b, gs, part, "_tb", "_t", sup);
}

/// `_tc`: the rows of `from` (one per trigger batch, `_e0`/`_e1` the first and last time of
/// its evidence, `order` unique per group) with `_c`, the alert of its group it belongs to: a
/// batch whose evidence starts more than `sup` after the last evidence of the batches before
/// starts a new alert. (The last evidence of the batches before is the previous batch's: it
/// grows with the trigger's time for every kind.)
fn clusters(b: &mut Builder, gs: &str, part: &str, from: &str, order: &str, sup: i64) {
    b.cte(
        "_tc",
        format!(
            "SELECT *, sum(CASE WHEN _p IS NULL OR _e0 > _p + {sup} THEN 1 ELSE 0 END) OVER ({part}ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _c FROM (SELECT {gs}{order_col}_e0, _e1, {rest}lag(_e1) OVER ({part}ORDER BY {order}) AS _p FROM {from}) _x",
            order_col = if order == "_t" { "_t, " } else { "_b, _t, " },
            rest = if order == "_t" { "" } else { "_n, _fs, " },
        ),
    );
}

/// `_cov` from `_nx` (each hit with `_nt`, the time of the trigger batch whose evidence holds
/// it, NULL when none) and `_tc`; `_fire` the first trigger of each alert.
fn cover_by_batch(b: &mut Builder, gs: &str, on: &str) {
    let g_nx: String = gs.split(", ").filter(|x| !x.is_empty()).map(|x| format!("_nx.{x}, ")).collect();
    b.cte(
        "_cov",
        format!("SELECT {g_nx}_tc._c, _nx._t, _nx._st, _nx._id FROM _nx JOIN _tc ON {on} AND _tc._t = _nx._nt"),
    );
    b.cte("_fire", format!("SELECT {gs}_c, min(_t) AS _fired FROM _tc GROUP BY {gs}_c"));
}

/// How many times at most the engine's baseline is multiplied by `1 − alpha` over a run of empty
/// buckets before it stops changing: from any baseline a count can make (below 2⁶⁴), after this
/// many multiplications the value is one that multiplying leaves as it is (0, or a subnormal too
/// small to shrink). Capping the run there gives the engine's value exactly. An error when no
/// such bound is found below a million.
pub fn decay_steps(s: &Spike) -> Result<u64, String> {
    let r = 1.0 - s.alpha;
    let mut x = 18_446_744_073_709_551_616.0f64;
    let mut steps = 0u64;
    while x * r != x {
        x *= r;
        steps += 1;
        if steps > 1_000_000 {
            return Err(format!(
                "alpha {} decays the baseline over more than a million empty buckets; not expressible exactly by kaq detect --sql",
                s.alpha
            ));
        }
    }
    // Every smaller value must be fixed too (rounding is monotone, so a smaller start ends at or
    // below `x`): true for 0, checked one by one for the subnormals m·2⁻¹⁰⁷⁴ up to `x`.
    let tiny = f64::from_bits(1);
    let fixed_below = x == 0.0
        || (x < f64::MIN_POSITIVE
            && x / tiny <= 1e6
            && (1..=(x / tiny) as u64).all(|m| (m as f64 * tiny) * r == m as f64 * tiny));
    if !fixed_below {
        return Err(format!(
            "alpha {}: the baseline settles on {x:e}, and values below it may still change; not expressible exactly by kaq detect --sql",
            s.alpha
        ));
    }
    Ok(steps)
}

/// The fired buckets of a group (as a list of bucket numbers) from its `_b` rows: a fold in
/// bucket order doing the engine's arithmetic step by step (see [`Spike`]).
fn spike_fold(d: Dialect, s: &Spike, steps: u64) -> String {
    let a = d.double(s.alpha);
    let r = d.double(1.0 - s.alpha);
    let f = d.double(s.factor);
    let min = s.min_count;
    match d {
        Dialect::DuckDb => {
            let list = "list({'b': _b, 'n': _n} ORDER BY _b)";
            let gap = format!("least(coalesce(_x.b - _acc.prev - 1, 0), {steps})");
            let decayed = format!("list_reduce(range({gap}), lambda _a, _y: _a * {r}, _acc.base)");
            let next = format!(
                "{{'base': {a} * CAST(_x.n AS DOUBLE) + {r} * _b1, 'prev': _x.b, 'out': CASE WHEN _x.n >= {min} AND CAST(_x.n AS DOUBLE) >= {f} * _b1 THEN list_append(_acc.out, _x.b) ELSE _acc.out END}}"
            );
            format!(
                "list_reduce({list}, lambda _acc, _x: list_transform([{decayed}], lambda _b1: {next})[1], {{'base': CAST(0 AS DOUBLE), 'prev': CAST(NULL AS BIGINT), 'out': CAST([] AS BIGINT[])}}).out"
            )
        }
        Dialect::Spark => {
            let list = "array_sort(collect_list(named_struct('b', _b, 'n', _n)))";
            let gap = format!("least(coalesce(_x.b - _acc.prev - 1, 0), {steps})");
            let decayed = format!(
                "CASE WHEN {gap} > 0 THEN aggregate(sequence(1, CAST({gap} AS INT)), _acc.base, (_a, _y) -> _a * {r}) ELSE _acc.base END"
            );
            let next = format!(
                "named_struct('base', {a} * CAST(_x.n AS DOUBLE) + {r} * _b1, 'prev', CAST(_x.b AS BIGINT), 'out', CASE WHEN _x.n >= {min} AND CAST(_x.n AS DOUBLE) >= {f} * _b1 THEN concat(_acc.out, array(CAST(_x.b AS BIGINT))) ELSE _acc.out END)"
            );
            format!(
                "aggregate({list}, named_struct('base', CAST(0 AS DOUBLE), 'prev', CAST(NULL AS BIGINT), 'out', CAST(array() AS ARRAY<BIGINT>)), (_acc, _x) -> transform(array({decayed}), _b1 -> {next})[0]).out"
            )
        }
        Dialect::Trino => {
            let ty = "ROW(base DOUBLE, prev BIGINT, out ARRAY(BIGINT))";
            let list = "array_agg(CAST(ROW(_b, _n) AS ROW(b BIGINT, n BIGINT)) ORDER BY _b)";
            let gap = format!("least(coalesce(_x.b - _acc.prev - 1, 0), {steps})");
            let decayed = format!(
                "IF({gap} > 0, reduce(sequence(1, {gap}), _acc.base, (_a, _y) -> _a * {r}, _a -> _a), _acc.base)"
            );
            let next = format!(
                "CAST(ROW({a} * CAST(_x.n AS DOUBLE) + {r} * _b1, _x.b, IF(_x.n >= {min} AND CAST(_x.n AS DOUBLE) >= {f} * _b1, _acc.out || ARRAY[_x.b], _acc.out)) AS {ty})"
            );
            format!(
                "reduce({list}, CAST(ROW(0e0, NULL, ARRAY[]) AS {ty}), (_acc, _x) -> element_at(transform(ARRAY[{decayed}], _b1 -> {next}), 1), _acc -> _acc.out)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_is_bounded_for_the_usual_alphas() {
        for alpha in [0.1, 0.3, 0.5, 0.9, 1.0] {
            let s = Spike { alpha, ..Spike::default() };
            let n = decay_steps(&s).unwrap();
            // After n multiplications from the largest baseline, it no longer changes; nor does
            // it from any smaller one.
            let r = 1.0 - alpha;
            for start in [18_446_744_073_709_551_616.0f64, 1234.5, 1.0, 1e-300, 5e-324] {
                let mut x = start;
                for _ in 0..n {
                    x *= r;
                }
                assert_eq!(x * r, x, "alpha {alpha} from {start}");
            }
            assert!(n < 10_000, "alpha {alpha}: {n}");
        }
    }
}
