//! What a run shows: the summary table, the latency plot (SVG, drawn by hand) and the
//! progress line.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

/// One finality measurement: transaction at `x` (its height, or its rank) became final on
/// `peer` after `ms` milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) x: u64,
    pub(crate) peer: usize,
    pub(crate) ms: f64,
}

/// One peer's line of the table.
#[derive(Debug, Clone)]
pub(crate) struct PeerRow {
    pub(crate) address: String,
    pub(crate) role: String,
    pub(crate) moves: u64,
    pub(crate) finalized: u64,
    /// What the channel paid it (ETH, formatted).
    pub(crate) payout: String,
    /// Change of its chain balance (ETH, formatted), when known.
    pub(crate) balance_change: Option<String>,
}

/// Everything a run reports.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) mode: String,
    pub(crate) n: usize,
    pub(crate) target: u64,
    pub(crate) transitions: u64,
    pub(crate) peers: Vec<PeerRow>,
    pub(crate) samples: Vec<Sample>,
    /// What `Sample::x` is.
    pub(crate) x_label: &'static str,
    /// The samples say which peer saw them (a latency column per peer).
    pub(crate) per_peer_latency: bool,
    /// Unit of the latencies ("ms" or "virtual ms").
    pub(crate) unit: &'static str,
    pub(crate) disputes: Vec<String>,
    pub(crate) outcome: Vec<String>,
    pub(crate) wall: Duration,
    pub(crate) virtual_ms: Option<u64>,
}

/// The `p` quantile (0..=1) of `values`, nearest rank.
pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

impl Summary {
    fn latencies(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.ms).collect()
    }

    /// The summary table, as printed.
    pub(crate) fn table(&self) -> String {
        let lat = self.latencies();
        let mut out = String::new();
        let _ = writeln!(out, "\nsummary");
        let _ = writeln!(out, "  {:<22} {}", "mode", self.mode);
        let _ = writeln!(out, "  {:<22} {}", "peers", self.n);
        let _ = writeln!(out, "  {:<22} {}", "counter target", self.target);
        let _ = writeln!(out, "  {:<22} {}", "transitions", self.transitions);
        let _ = writeln!(
            out,
            "  {:<22} {:.1} {}",
            "finality latency p50",
            percentile(&lat, 0.5),
            self.unit
        );
        let _ = writeln!(
            out,
            "  {:<22} {:.1} {}",
            "finality latency p99",
            percentile(&lat, 0.99),
            self.unit
        );
        let _ = writeln!(out, "  {:<22} {}", "latency samples", lat.len());
        let _ = writeln!(out, "  {:<22} {}", "disputes", self.disputes.len());
        for d in &self.disputes {
            let _ = writeln!(out, "  {:<22}   {d}", "");
        }
        for (i, line) in self.outcome.iter().enumerate() {
            let _ = writeln!(out, "  {:<22} {line}", if i == 0 { "outcome" } else { "" });
        }
        if let Some(v) = self.virtual_ms {
            let _ = writeln!(out, "  {:<22} {:.1} s", "virtual time", v as f64 / 1000.0);
        }
        let _ = writeln!(out, "  {:<22} {:.1} s", "wall time", self.wall.as_secs_f64());
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:>4}  {:<42}  {:<22}  {:>5}  {:>5}  {:>8}  {:>8}  {:>12}",
            "peer", "address", "role", "moves", "final", "p50", "p99", "payout (ETH)"
        );
        for (i, p) in self.peers.iter().enumerate() {
            let mine: Vec<f64> = self
                .samples
                .iter()
                .filter(|s| s.peer == i)
                .map(|s| s.ms)
                .collect();
            let (p50, p99) = if mine.is_empty() || !self.per_peer_latency {
                ("-".to_string(), "-".to_string())
            } else {
                (
                    format!("{:.1}", percentile(&mine, 0.5)),
                    format!("{:.1}", percentile(&mine, 0.99)),
                )
            };
            let _ = write!(
                out,
                "  {:>4}  {:<42}  {:<22}  {:>5}  {:>5}  {:>8}  {:>8}  {:>12}",
                i, p.address, p.role, p.moves, p.finalized, p50, p99, p.payout
            );
            if let Some(change) = &p.balance_change {
                let _ = write!(out, "  net {change}");
            }
            let _ = writeln!(out);
        }
        out
    }

    /// The latency plot: every sample against `x`, coloured by peer, with the p50 and p99
    /// lines; and beside it the distribution (CDF).
    pub(crate) fn svg(&self) -> String {
        const W: f64 = 960.0;
        const H: f64 = 440.0;
        let lat = self.latencies();
        let p50 = percentile(&lat, 0.5);
        let p99 = percentile(&lat, 0.99);
        let y_max = nice_ceiling(lat.iter().copied().fold(1.0, f64::max) * 1.05);
        let x_max = self.samples.iter().map(|s| s.x).max().unwrap_or(1).max(1) as f64;
        let x_min = self.samples.iter().map(|s| s.x).min().unwrap_or(0) as f64;
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Entente finality latency: {} ({} peers, {} transitions; p50 {:.1} {u}, p99 {:.1} {u})</text>"#,
            W / 2.0,
            escape(&self.mode),
            self.n,
            self.transitions,
            p50,
            p99,
            u = self.unit
        );

        // Left panel: latency against height.
        let left = Panel {
            x0: 70.0,
            y0: 50.0,
            w: 540.0,
            h: 320.0,
        };
        left.axes(
            &mut svg,
            (x_min, x_max),
            (0.0, y_max),
            self.x_label,
            &format!("submit to final ({})", self.unit),
        );
        for (label, value, color) in [("p50", p50, "#444"), ("p99", p99, "#c0392b")] {
            let y = left.y(value, 0.0, y_max);
            let _ = writeln!(
                svg,
                r#"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{color}" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="{color}">{label}</text>"#,
                left.x0,
                left.x0 + left.w,
                left.x0 + left.w + 4.0,
                y + 4.0
            );
        }
        for s in &self.samples {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}" fill-opacity="0.75"/>"#,
                left.x(s.x as f64, x_min, x_max),
                left.y(s.ms, 0.0, y_max),
                color(s.peer)
            );
        }
        // Legend: one colour per peer that has samples.
        let mut peers: Vec<usize> = self.samples.iter().map(|s| s.peer).collect();
        peers.sort_unstable();
        peers.dedup();
        if self.per_peer_latency && peers.len() > 1 {
            for (k, peer) in peers.iter().enumerate() {
                let x = left.x0 + 10.0 + (k % 8) as f64 * 66.0;
                let y = H - 18.0 + (k / 8) as f64 * 14.0 - 4.0;
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{x}" cy="{:.1}" r="4" fill="{}"/><text x="{}" y="{:.1}">peer {peer}</text>"#,
                    y - 4.0,
                    color(*peer),
                    x + 8.0,
                    y
                );
            }
        }

        // Right panel: the distribution.
        let right = Panel {
            x0: 690.0,
            y0: 50.0,
            w: 240.0,
            h: 320.0,
        };
        right.axes(
            &mut svg,
            (0.0, y_max),
            (0.0, 1.0),
            &format!("latency ({})", self.unit),
            "fraction final",
        );
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        if !sorted.is_empty() {
            let mut points = format!("{:.1},{:.1}", right.x(0.0, 0.0, y_max), right.y(0.0, 0.0, 1.0));
            for (i, v) in sorted.iter().enumerate() {
                let frac_before = i as f64 / sorted.len() as f64;
                let frac_after = (i + 1) as f64 / sorted.len() as f64;
                let x = right.x(*v, 0.0, y_max);
                let _ = write!(
                    points,
                    " {x:.1},{:.1} {x:.1},{:.1}",
                    right.y(frac_before, 0.0, 1.0),
                    right.y(frac_after, 0.0, 1.0)
                );
            }
            let _ = writeln!(
                svg,
                r##"<polyline points="{points}" fill="none" stroke="#2c7fb8" stroke-width="2"/>"##
            );
        }
        let _ = writeln!(svg, "</svg>");
        svg
    }
}

/// A plotting area and its scales.
struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
}

impl Panel {
    fn x(&self, v: f64, lo: f64, hi: f64) -> f64 {
        self.x0 + (v - lo) / (hi - lo) * self.w
    }

    fn y(&self, v: f64, lo: f64, hi: f64) -> f64 {
        self.y0 + self.h - (v - lo) / (hi - lo) * self.h
    }

    fn axes(
        &self,
        svg: &mut String,
        (x_lo, x_hi): (f64, f64),
        (y_lo, y_hi): (f64, f64),
        x_label: &str,
        y_label: &str,
    ) {
        let (x0, y0, w, h) = (self.x0, self.y0, self.w, self.h);
        let _ = writeln!(
            svg,
            r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fafafa" stroke="#999"/>"##
        );
        for v in ticks(x_lo, x_hi) {
            let x = self.x(v, x_lo, x_hi);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                y0 + h,
                y0 + h + 5.0,
                y0 + h + 18.0,
                label(v)
            );
        }
        for v in ticks(y_lo, y_hi) {
            let y = self.y(v, y_lo, y_hi);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0,
                x0 + w,
                x0 - 6.0,
                y + 4.0,
                label(v)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + w / 2.0,
            y0 + h + 36.0,
            escape(x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            x0 - 48.0,
            y0 + h / 2.0,
            escape(y_label)
        );
    }
}

/// About five round tick values from `lo` to `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_step((hi - lo) / 5.0);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(v);
        v += step;
    }
    out
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A round upper bound for an axis.
fn nice_ceiling(v: f64) -> f64 {
    let step = nice_step(v / 5.0);
    ((v / step).ceil() * step).max(step)
}

fn label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

fn color(peer: usize) -> &'static str {
    const PALETTE: [&str; 10] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
        "#17becf",
    ];
    PALETTE[peer % PALETTE.len()]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The progress line: redrawn in place on a terminal, a line every few seconds otherwise.
pub(crate) struct Progress {
    tty: bool,
    last: Option<Duration>,
    drawn: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Shows `done` of `total` and `details`, `elapsed` into the run.
    pub(crate) fn show(&mut self, done: u64, total: u64, details: &str, elapsed: Duration) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        if let Some(last) = self.last
            && elapsed < last + every
        {
            return;
        }
        self.last = Some(elapsed);
        let width = 30usize;
        let filled = if total == 0 {
            0
        } else {
            ((done.min(total) as f64 / total as f64) * width as f64).round() as usize
        };
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
        let line = format!(
            "progress [{bar}] {done}/{total}  {details}  {:.1} s",
            elapsed.as_secs_f64()
        );
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r{line}\x1b[K");
            self.drawn = true;
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// Ends the progress line.
    pub(crate) fn finish(&mut self) {
        if self.drawn {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out);
            let _ = out.flush();
            self.drawn = false;
        }
    }
}

/// Wei as ether with 4 decimals.
pub(crate) fn eth(wei: entente_types::U256) -> String {
    use entente_types::U256;
    let unit = U256::from(10u64).pow(U256::from(14u64));
    let tenths = wei / unit;
    let whole = tenths / U256::from(10_000u64);
    let frac = tenths % U256::from(10_000u64);
    format!("{whole}.{frac:0>4}")
}

/// `after - before` in ether with a sign.
pub(crate) fn signed_eth(before: entente_types::U256, after: entente_types::U256) -> String {
    if after >= before {
        format!("+{}", eth(after - before))
    } else {
        format!("-{}", eth(before - after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ticks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(ticks(0.0, 100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ceiling(93.0), 100.0);
    }
}
