//! Runs the exhaustive check of the court model and prints what it found.
//!
//! `cargo run -p entente-court-model --release -- [--n 2|3] [--machine round-robin|open] [--weaken NAME]
//! [--depth D] [--max-height H] [--no-leave] [--threads T] [--timing P,A,F,C,L] [--intent-bound B]
//! [--exit-challenge-moves-only]` (the last: the court change the model suggests, see
//! `CourtModel::exit_challenge_moves_only`)
//! where NAME is `none`, `unlinked-post`, `tx-timestamp-deadline`, `fraud-judged-later`,
//! `approve-while-writer`, `no-branch-cut`, or for the open machine `sign-two-at-one-height` (the old
//! escape), `anyone-posts-in-open-states` (the court before `NotSequencer`),
//! `no-hold-while-intent-held` or `no-lockstep` (h without the hold or lockstep of O9). Exits with 0
//! when the outcome is the expected one (no counterexample
//! under the sound rules, one under a weakening), 1 otherwise, 2 on a bad command line.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program

use entente_court_model::{CourtModel, Machine, Rules, Timing, check};
use std::process::ExitCode;

const USAGE: &str = "usage: court-model [--n 2|3] [--machine round-robin|open] \
                                [--weaken none|unlinked-post|\
                                tx-timestamp-deadline|fraud-judged-later|approve-while-writer|\
                                no-branch-cut|sign-two-at-one-height|anyone-posts-in-open-states|\
                                no-hold-while-intent-held|no-lockstep] \
                                [--depth D] \
                                [--max-height H] [--no-leave] [--threads T] \
                                [--timing P,A,F,C,L] [--intent-bound B] \
                                [--exit-challenge-moves-only]";

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let mut n = 2u8;
    let mut machine = Machine::RoundRobin;
    let mut intent_bound = None;
    let mut rules = Rules::Sound;
    let mut depth = None;
    let mut max_height = None;
    let mut leave = true;
    let mut exit_moves_only = false;
    let mut timing = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{arg} needs {what}"));
        let parsed: Result<(), String> = (|| {
            match arg.as_str() {
                "--n" => {
                    n = value("a number")?
                        .parse()
                        .map_err(|_| "--n: 2 or 3".to_string())?;
                    if !(2..=3).contains(&n) {
                        return Err("--n: 2 or 3".into());
                    }
                }
                "--machine" => {
                    machine = match value("a machine")?.as_str() {
                        "round-robin" => Machine::RoundRobin,
                        "open" => Machine::Open,
                        _ => return Err("--machine: round-robin or open".into()),
                    };
                }
                "--intent-bound" => {
                    intent_bound = Some(
                        value("a bound")?
                            .parse()
                            .map_err(|_| "--intent-bound: 0 to 100")?,
                    );
                }
                "--weaken" => {
                    let name = value("a rule name")?;
                    rules = Rules::from_name(&name).ok_or_else(|| {
                        let names: Vec<_> = Rules::ALL.iter().map(|r| r.name()).collect();
                        format!("--weaken: one of {}", names.join(", "))
                    })?;
                }
                "--depth" => {
                    depth = Some(value("a depth")?.parse().map_err(|_| "--depth: a number")?);
                }
                "--max-height" => {
                    let h: u8 = value("a height")?.parse().map_err(|_| "--max-height: 1 to 5")?;
                    if !(1..=5).contains(&h) {
                        return Err("--max-height: 1 to 5".into());
                    }
                    max_height = Some(h);
                }
                "--no-leave" => leave = false,
                "--exit-challenge-moves-only" => exit_moves_only = true,
                "--timing" => {
                    let v: Vec<i8> = value("P,A,F,C,L")?
                        .split(',')
                        .map(|x| x.parse::<i8>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| "--timing: five small numbers P,A,F,C,L")?;
                    match v[..] {
                        [p2p, agreement, fallback, challenge, approval]
                            if v.iter().all(|x| (0..=4).contains(x)) && p2p + agreement + fallback > 0 =>
                        {
                            timing = Some(Timing {
                                p2p,
                                agreement,
                                fallback,
                                challenge,
                                approval,
                            });
                        }
                        _ => {
                            return Err(
                                "--timing: five numbers 0..=4: p2p,agreement,fallback,challenge,approval"
                                    .into(),
                            );
                        }
                    }
                }
                "--threads" => {
                    threads = value("a count")?.parse().map_err(|_| "--threads: a number")?;
                    if threads == 0 {
                        return Err("--threads: at least 1".into());
                    }
                }
                other => return Err(format!("unknown argument {other}")),
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut model = match machine {
        Machine::RoundRobin => CourtModel::new(n, rules),
        Machine::Open => CourtModel::open(n, rules),
    };
    if let Some(b) = intent_bound {
        model.intent_bound = b;
    }
    if let Some(h) = max_height {
        model.max_height = h;
    }
    model.leave = leave;
    model.exit_challenge_moves_only = exit_moves_only;
    if let Some(t) = timing {
        model.timing = t;
    }
    let report = check(model, depth, threads);
    print!("{}", report.summary());
    if report.failures.is_empty() == (rules == Rules::Sound) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
