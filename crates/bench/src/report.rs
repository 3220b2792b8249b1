//! The side-by-side gas table (markdown), the raw figures (JSON) and a grouped bar chart (SVG).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::entente::op as e;
use crate::nitro::op as nitro;
use crate::{Framework, GasReport};

/// One row of the comparison: an Entente operation and Nitro's comparable one, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Entente's operation.
    pub entente: &'static str,
    /// Nitro's comparable operation (`None`: Nitro has none).
    pub nitro: Option<&'static str>,
    /// Why the two differ where Entente costs more (shown only for a miss).
    pub on_miss: &'static str,
}

/// The comparison, in table order.
pub fn pairs() -> Vec<Pair> {
    let p = |entente, nitro, on_miss| Pair {
        entente,
        nitro,
        on_miss,
    };
    vec![
        p(
            e::FUND_TOTAL,
            Some(nitro::FUND_TOTAL),
            "Nitro keeps nothing on chain for a channel until a dispute or an exit: funding is N \
             increments of one holdings slot. Entente's `open` registers the channel (the seven-slot record \
             and one slot per member) and every deposit updates it; later operations rely on that record (a \
             calldata post reads one slot, a dispute two or three, an N-signed proof checks the stored \
             participants hash). The on-chain record is a design choice of Entente, paid once per channel.",
        ),
        p(
            e::OPEN,
            Some(nitro::DEPOSIT_FIRST),
            "Nitro has no open transaction; its first deposit only creates the holdings slot. Entente's open \
             stores the channel record (spec, machine, times, hashes of the genesis state and of the \
             participants) and one member slot per participant, hence its growth with N.",
        ),
        p(
            e::DEPOSIT,
            Some(nitro::DEPOSIT_LATER),
            "A later Nitro deposit rewrites one existing holdings slot. Entente's checks the funding deadline \
             and that participant `index` has not paid, marks the member funded and counts it: three slots \
             (slot 0, the member, the locked total), each read cold and rewritten, against Nitro's one.",
        ),
        p(
            e::DEPOSIT_LAST,
            Some(nitro::DEPOSIT_LATER),
            "As for the other deposits, and the last one also activates the channel (status and genesis \
             timestamp, in slot 0, which the deposit writes anyway).",
        ),
        p(
            e::POST,
            Some(nitro::CHECKPOINT),
            "Not the same work. A calldata post is a checked link (docs/security.md, R3): the chain loads the \
             parent state into the channel's machine clone (`setState`: about 22k per fresh storage slot, \
             and the RoundRobinCounter state has two per participant, hence the growth with N), runs the move, \
             reads the exits to check that value is conserved, and moves the head (three slots). Nitro's \
             checkpoint stores one status word and never runs the application. Before the court's rules a \
             post only logged the transaction (67k), and an unlinked post could rob the channel. What would \
             cut it: keep the head's state loaded in the clone between posts (the `setState` is then skipped \
             for consecutive posts) and drop the per-digest post time (22k).",
        ),
        p(
            e::TIMEOUT_GENESIS,
            Some(nitro::CHALLENGE),
            "A timeout on the genesis asks the machine who writes next at the head (the state is in calldata \
             and the machine clone is a cold account) and writes the dispute record and the head's fields; \
             Nitro's challenge writes one status word. From N = 8 Entente is below: Nitro checks N + 1 \
             signatures.",
        ),
        p(
            e::TIMEOUT_POSTED,
            Some(nitro::CHALLENGE),
            "The machine's state (for the RoundRobinCounter, two arrays of N words) is in calldata and in the \
             dispute log.",
        ),
        p(
            e::TIMEOUT_SIGNED,
            Some(nitro::CHALLENGE),
            "Both check N signatures (Nitro N + 1, with the challenger's). An N-signed proof in a timeout \
             first becomes the chain's head (a checkpoint in the same call: the head's height, hash, stamp \
             and time, fresh slots on a channel's first dispute), then the timeout asks the machine who \
             writes next (an external call with the state) and writes the dispute record; Nitro's challenge \
             writes one status word.",
        ),
        p(
            e::CHALLENGE,
            Some(nitro::RESPOND),
            "Nitro's `respond` carries one signature (the next mover's) and two small variable parts, and \
             rewrites a non-zero status word. Entente's challenge proves a later state with N signatures and \
             also carries the dispute record it answers (checked against the stored hash), stores the new \
             record's hash and logs it with the state, and the state becomes the chain's head (its fields \
             rewritten, about 50k since the court's rules): each signature beyond the second adds ~5k, \
             hence the gap at N = 8. Entente has no one-signature answer by design: an answer must be a \
             state every participant signed, or the accused's own posted transaction.",
        ),
        p(
            e::CHALLENGE,
            Some(nitro::CHECKPOINT_CLEARS),
            "Both carry N signatures over a later state and rewrite one existing slot; Entente's also carries \
             and checks the dispute record it answers, carries the machine's state, logs the new record \
             with that state and moves the chain's head to the state (its fields rewritten).",
        ),
        p(
            e::FINALIZE,
            Some(nitro::TRANSFER_AFTER_TIMEOUT),
            "Not the same work. Entente's finalize runs the machine's slash hook and starts a new fork for \
             the remaining participants (a `setState` of the head's state in the channel's machine clone, \
             about 22k per storage slot it fills: the RoundRobinCounter state has two slots per participant); \
             the channel goes on. Nitro cannot remove a participant: after an unanswered challenge it pays \
             out the challenged outcome and the channel is over. Since the court's rules the clone already \
             holds the state of an earlier post or fraud proof, which made finalize 30-45% cheaper.",
        ),
        p(e::FRAUD_DOUBLE, None, ""),
        p(e::FRAUD_INVALID, None, ""),
        p(e::FRAUD_TS_ORDER, None, ""),
        p(e::FRAUD_PARENT, None, ""),
        p(
            e::CLOSE,
            Some(nitro::CONCLUDE),
            "Nitro's conclude receives only the hashes of the final state's app part and outcome, so its \
             calldata is N signatures and a few words. Entente's close carries the final state itself and \
             asks the machine whether the game is over and what everyone gets (two external calls decoding \
             the state), checks that the exits add up to the locked funds, and logs the exits (their hash is \
             stored for the withdrawals).",
        ),
        p(
            e::CLOSE_AND_WITHDRAW_ALL,
            Some(nitro::HAPPY_EXIT),
            "Entente pays out by pull withdrawals, one transaction per participant (21,000 intrinsic gas, the \
             exits list in calldata, a cold channel read, each); Nitro's happy exit pays everybody inside the \
             concluding transaction. With pull payments one participant's failing receiver cannot block the \
             others' payouts, but they cost N transactions.",
        ),
        p(
            e::WITHDRAW_FIRST,
            Some(nitro::TRANSFER_FIRST),
            "The first claim of a channel sets its claimed-exits bitmap, a fresh slot (~22k); later claims only \
             update it, and there Entente is below Nitro (next row).",
        ),
        p(e::WITHDRAW_SECOND, Some(nitro::TRANSFER_SECOND), ""),
        p(e::WITHDRAW_PENDING, None, ""),
    ]
}

/// `entente` against `nitro`: at or below, or the overshoot in percent.
fn verdict(entente: Option<u64>, nitro: Option<u64>) -> Option<(bool, f64)> {
    let (e, n) = (entente?, nitro?);
    let delta = (e as f64 - n as f64) / n as f64 * 100.0;
    Some((e <= n, delta))
}

fn thousands(gas: u64) -> String {
    let digits = gas.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cell(gas: Option<u64>) -> String {
    gas.map(thousands).unwrap_or_else(|| "–".into())
}

/// The markdown table with its header and the notes on misses.
pub fn markdown(report: &GasReport) -> String {
    let mut md = String::new();
    let ns = &report.ns;
    let _ = writeln!(md, "# Gas per on-chain operation: Entente vs Nitro\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -p entente-bench -- gas`; do not edit by hand.\n\n\
         Transaction gas (the receipt's `gasUsed`: 21,000 + calldata + execution, after refunds) of each \
         operation, measured on one anvil (`anvil {}`, commit `{}`, chain id {}): Entente's \
         StateChannelManager (repository commit `{}`) and Nitro's `NitroAdjudicator` from \
         `@statechannels/nitro-protocol` {} (its compiled artifact, no libraries to link), deployed side by \
         side. Every channel holds 1 ether (ETH) per participant. Entente channels run the \
         RoundRobinCounter machine with the flows of `contracts/test/Gas.t.sol`; Nitro channels run its \
         `CountingApp`, each state supported by all N signatures on that state. Raw figures: `gas.json`; \
         chart: `gas.svg`.\n",
        report.anvil.version,
        report.anvil.commit,
        report.chain_id,
        report.commit.as_deref().unwrap_or("unknown"),
        report.nitro_version,
    );
    let mut header = String::from("| operation | Nitro comparable |");
    let mut rule = String::from("|---|---|");
    for n in ns {
        let _ = write!(header, " Entente N={n} |");
        rule.push_str("---:|");
    }
    for n in ns {
        let _ = write!(header, " Nitro N={n} |");
        rule.push_str("---:|");
    }
    header.push_str(" verdict |");
    rule.push_str("---|");
    let _ = writeln!(md, "{header}\n{rule}");
    let mut misses = Vec::new();
    for pair in pairs() {
        let mut row = format!("| {} | {} |", pair.entente, pair.nitro.unwrap_or("– (none)"));
        for &n in ns {
            let _ = write!(
                row,
                " {} |",
                cell(report.gas(Framework::Entente, n, pair.entente))
            );
        }
        for &n in ns {
            let gas = pair.nitro.and_then(|o| report.gas(Framework::Nitro, n, o));
            let _ = write!(row, " {} |", cell(gas));
        }
        let mut verdicts = Vec::new();
        let mut missed = Vec::new();
        for &n in ns {
            let entente = report.gas(Framework::Entente, n, pair.entente);
            let nitro_gas = pair.nitro.and_then(|o| report.gas(Framework::Nitro, n, o));
            if let Some((met, delta)) = verdict(entente, nitro_gas) {
                verdicts.push(format!(
                    "N={n}: {} ({delta:+.0}%)",
                    if met { "at or below" } else { "**above**" }
                ));
                if !met {
                    missed.push(format!("N={n} {delta:+.0}%"));
                }
            }
        }
        let verdict_cell = if pair.nitro.is_none() {
            "no Nitro equivalent".to_string()
        } else if verdicts.is_empty() {
            "–".to_string()
        } else {
            verdicts.join("; ")
        };
        let _ = writeln!(row, " {verdict_cell} |");
        md.push_str(&row);
        if !missed.is_empty() {
            misses.push((pair, missed));
        }
    }
    let _ = writeln!(md, "\n## Where Entente costs more, and why\n");
    if misses.is_empty() {
        let _ = writeln!(
            md,
            "Nowhere: every operation is at or below Nitro's comparable one."
        );
    }
    for (pair, missed) in misses {
        let _ = writeln!(
            md,
            "- **{}** vs Nitro's {} ({}): {}",
            pair.entente,
            pair.nitro.unwrap_or("–"),
            missed.join(", "),
            pair.on_miss
        );
    }
    let _ = writeln!(
        md,
        "\n## Caveats\n\n\
         - Nitro's figures are those of the npm package's current release (`latest`: 0.17.x, Solidity \
           0.7.4; the 2.x releases are alphas). The gas figures Nitro publishes (deposit 46,496 / 29,408, \
           challenge 113,146, checkpoint 73,936, challenge response 96,482, happy exit 111,514) differ from \
           what this release costs here by 3-35%; which contracts and setup they were measured on is \
           not known here. This table compares the contracts actually deployed, on the same chain.\n\
         - The two protocols do not do the same work per operation: Entente registers channels on chain, \
           keeps calldata available, re-executes machines in fraud proofs, and supports forks that remove a \
           participant and carry on; Nitro has no fraud proofs and no such forks (\"–\" rows).\n\
         - Figures vary by a few dozen gas between runs: transactions carry timestamps, and zero and \
           non-zero calldata bytes cost differently.\n\
         - Every Entente flow runs on a freshly deployed RoundRobinCounter (a machine keeps one global \
           state, so `setState` in finalize and re-execution would otherwise depend on what ran before): the \
           first-use, dearest case, as in forge's isolated tests.\n\
         - Entente's figures are within ~5.5k (lower here) of the `forge snapshot --isolate` figures of \
           `docs/contracts.md`, section 8, measured on the same flows; the difference was not investigated."
    );
    md
}

/// The raw figures and the comparison as JSON.
pub fn json(report: &GasReport) -> Value {
    let measurements: Vec<Value> = report
        .measured
        .iter()
        .map(|m| {
            json!({
                "framework": m.framework.name(),
                "n": m.n,
                "operation": m.operation,
                "gas": m.gas,
            })
        })
        .collect();
    let comparison: Vec<Value> = pairs()
        .into_iter()
        .map(|pair| {
            let per_n = |f: &dyn Fn(usize) -> Value| {
                Value::Object(report.ns.iter().map(|&n| (n.to_string(), f(n))).collect())
            };
            let entente = |n| report.gas(Framework::Entente, n, pair.entente);
            let nitro_gas = |n| pair.nitro.and_then(|o| report.gas(Framework::Nitro, n, o));
            json!({
                "operation": pair.entente,
                "nitro_operation": pair.nitro,
                "entente": per_n(&|n| json!(entente(n))),
                "nitro": per_n(&|n| json!(nitro_gas(n))),
                "at_or_below_nitro": per_n(&|n| json!(verdict(entente(n), nitro_gas(n)).map(|v| v.0))),
            })
        })
        .collect();
    json!({
        "command": "cargo run --release -p entente-bench -- gas",
        "gas": "transaction gas: the receipt's gasUsed (21,000 + calldata + execution, after refunds)",
        "anvil": { "version": report.anvil.version, "commit": report.anvil.commit },
        "chain_id": report.chain_id,
        "repository_commit": report.commit,
        "nitro_protocol": report.nitro_version,
        "participants": report.ns,
        "measurements": measurements,
        "comparison": comparison,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A grouped horizontal bar chart of the comparison rows that have a Nitro counterpart: for each,
/// Entente and Nitro for every N.
pub fn svg(report: &GasReport) -> String {
    let rows: Vec<Pair> = pairs().into_iter().filter(|p| p.nitro.is_some()).collect();
    let mut series: Vec<(Framework, usize, &str)> = Vec::new();
    let palette = [("#1f77b4", "#aec7e8"), ("#d62728", "#ff9896")];
    for (i, &n) in report.ns.iter().enumerate() {
        let (dark, light) = palette[i % palette.len()];
        series.push((Framework::Entente, n, dark));
        series.push((Framework::Nitro, n, light));
    }
    let value = |pair: &Pair, framework: Framework, n: usize| match framework {
        Framework::Entente => report.gas(framework, n, pair.entente),
        Framework::Nitro => pair.nitro.and_then(|o| report.gas(framework, n, o)),
    };
    let max = rows
        .iter()
        .flat_map(|p| series.iter().filter_map(move |&(f, n, _)| value(p, f, n)))
        .max()
        .unwrap_or(1)
        .max(1);

    let (label_w, chart_w, bar_h, gap, top) = (360.0, 560.0, 9.0, 14.0, 70.0);
    let group_h = bar_h * series.len() as f64 + gap;
    let width = label_w + chart_w + 90.0;
    let height = top + group_h * rows.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">Gas per operation (transaction gas): Entente vs Nitro {}, same anvil</text>"#,
        escape(&report.nitro_version)
    );
    for (i, (framework, n, color)) in series.iter().enumerate() {
        let x = 10.0 + i as f64 * 150.0;
        let name = match framework {
            Framework::Entente => "Entente",
            Framework::Nitro => "Nitro",
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="34" width="12" height="12" fill="{color}"/><text x="{}" y="44">{name} N={n}</text>"#,
            x + 16.0
        );
    }
    // Grid lines every 100k.
    let step = 100_000u64;
    let mut tick = 0;
    while tick <= max {
        let x = label_w + chart_w * tick as f64 / max as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#666">{}k</text>"##,
            top - 8.0,
            height - 30.0,
            height - 16.0,
            tick / 1000
        );
        tick += step;
    }
    for (r, pair) in rows.iter().enumerate() {
        let y0 = top + r as f64 * group_h;
        let middle = y0 + bar_h * series.len() as f64 / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            middle - 2.0,
            escape(pair.entente)
        );
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end" font-size="9" fill="#666">vs Nitro: {}</text>"##,
            label_w - 8.0,
            middle + 9.0,
            escape(pair.nitro.unwrap_or("–"))
        );
        for (i, &(framework, n, color)) in series.iter().enumerate() {
            let y = y0 + i as f64 * bar_h;
            match value(pair, framework, n) {
                Some(gas) => {
                    let w = chart_w * gas as f64 / max as f64;
                    let _ = writeln!(
                        s,
                        r##"<rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{} N={n}: {} gas</title></rect><text x="{:.1}" y="{:.1}" font-size="8" fill="#333">{}</text>"##,
                        bar_h - 1.0,
                        framework.name(),
                        thousands(gas),
                        label_w + w + 3.0,
                        y + bar_h - 2.0,
                        thousands(gas)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<text x="{}" y="{:.1}" font-size="8" fill="#999">n/a</text>"##,
                        label_w + 3.0,
                        y + bar_h - 2.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Entente's figures of an earlier run (its `gas.json`), to show what a change cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The repository commit the earlier run measured.
    pub commit: String,
    /// (operation, N, gas) of each Entente measurement.
    pub gas: Vec<(String, usize, u64)>,
}

impl Baseline {
    /// Reads the Entente figures out of a `gas.json` written by this benchmark.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let commit = value["repository_commit"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        let rows = value["measurements"]
            .as_array()
            .with_context(|| format!("{} has no `measurements`", path.display()))?;
        let mut gas = Vec::new();
        for row in rows {
            if row["framework"] != "entente" {
                continue;
            }
            let (Some(op), Some(n), Some(g)) =
                (row["operation"].as_str(), row["n"].as_u64(), row["gas"].as_u64())
            else {
                anyhow::bail!("{}: a measurement without operation, n or gas", path.display());
            };
            gas.push((op.to_string(), n as usize, g));
        }
        Ok(Self { commit, gas })
    }

    fn get(&self, operation: &str, n: usize) -> Option<u64> {
        self.gas
            .iter()
            .find(|(op, m, _)| op == operation && *m == n)
            .map(|(_, _, g)| *g)
    }
}

/// Entente's figures before (the baseline) and after (this run), operation by operation.
pub fn before_after(report: &GasReport, baseline: &Baseline) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n## Entente before and after\n\n\
         This run against the figures of repository commit `{}` (`gas-baseline.json`): the court before \
         the rules of `docs/security.md` (checked links, the chain running posted moves in a per-channel \
         machine clone, the head, leave disputes). \"–\": the operation did not exist on that side.\n",
        baseline.commit
    );
    let mut header = String::from("| operation |");
    let mut rule = String::from("|---|");
    for n in &report.ns {
        let _ = write!(header, " before N={n} | after N={n} | change N={n} |");
        rule.push_str("---:|---:|---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    let mut operations: Vec<String> = Vec::new();
    for pair in pairs() {
        if !operations.iter().any(|op| op == pair.entente) {
            operations.push(pair.entente.to_string());
        }
    }
    for (op, _, _) in &baseline.gas {
        if !operations.contains(op) {
            operations.push(op.clone());
        }
    }
    for op in operations {
        let mut row = format!("| {op} |");
        for &n in &report.ns {
            let before = baseline.get(&op, n);
            let after = report.gas(Framework::Entente, n, &op);
            let change = match (before, after) {
                (Some(b), Some(a)) if b > 0 => format!("{:+.0}%", (a as f64 - b as f64) / b as f64 * 100.0),
                _ => "–".to_string(),
            };
            let _ = write!(row, " {} | {} | {change} |", cell(before), cell(after));
        }
        let _ = writeln!(md, "{row}");
    }
    md
}

/// Writes `gas.md` (with the before/after table when a `baseline` is given), `gas.json` and
/// `gas.svg` into `dir` (created if missing).
pub fn write(report: &GasReport, baseline: Option<&Baseline>, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut md = markdown(report);
    if let Some(baseline) = baseline {
        md.push_str(&before_after(report, baseline));
    }
    let files = [
        ("gas.md", md),
        (
            "gas.json",
            format!("{}\n", serde_json::to_string_pretty(&json(report))?),
        ),
        ("gas.svg", svg(report)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test helpers

    use super::Baseline;

    fn read(text: &str) -> anyhow::Result<Baseline> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gas-baseline.json");
        std::fs::write(&path, text).unwrap();
        Baseline::read(&path)
    }

    #[test]
    fn a_baseline_reads_entente_s_figures_only() {
        let b = read(
            r#"{"repository_commit": "abc", "measurements": [
                {"framework": "entente", "n": 2, "operation": "post calldata", "gas": 67480},
                {"framework": "nitro", "n": 2, "operation": "checkpoint (N-signed)", "gas": 72058}
            ]}"#,
        )
        .unwrap();
        assert_eq!(b.commit, "abc");
        assert_eq!(b.gas, vec![("post calldata".to_string(), 2, 67480)]);
        assert_eq!(b.get("post calldata", 2), Some(67480));
        assert_eq!(b.get("post calldata", 8), None);
    }

    #[test]
    fn a_bad_baseline_is_a_clear_error() {
        let missing = Baseline::read(std::path::Path::new("/nonexistent/gas-baseline.json")).unwrap_err();
        assert!(format!("{missing:#}").contains("/nonexistent/gas-baseline.json"));
        let not_json = read("not json").unwrap_err();
        assert!(format!("{not_json:#}").contains("is not JSON"), "{not_json:#}");
        let no_rows = read(r#"{"repository_commit": "abc"}"#).unwrap_err();
        assert!(
            format!("{no_rows:#}").contains("no `measurements`"),
            "{no_rows:#}"
        );
        let bad_row = read(r#"{"measurements": [{"framework": "entente", "n": 2}]}"#).unwrap_err();
        assert!(
            format!("{bad_row:#}").contains("without operation"),
            "{bad_row:#}"
        );
    }
}
