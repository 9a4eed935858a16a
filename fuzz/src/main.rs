//! `pbr-fuzz`: a bounded fuzzing run of pbr's parsers (stable Rust, no instrumentation).
//!
//! ```text
//! pbr-fuzz [--secs N] [--target NAME]... [--seed N] [--crashes DIR]
//! ```
//!
//! The supervisor gives each target an equal share of `--secs` (default: `PBR_FUZZ_SECS`, else
//! 60) and runs it in a worker process (`--worker`), which mutates the target's seeds and runs
//! each input, writing it first to `DIR/<target>/.current`. A panic, a crash of the worker (a
//! stack overflow aborts) or an input that runs for over `PBR_FUZZ_HANG_SECS` (default 20)
//! saves the input to `DIR/<target>/<kind>-<hash>` (default DIR: `fuzz/crashes`), prints the
//! command that replays it, and the run exits 1. Workers are restarted every few thousand inputs
//! (the source registry of the engine keeps every text it parsed).

use pbr_fuzz::{Mutator, TARGETS, input_name, run, seeds};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Inputs per worker before it is replaced.
const WORKER_INPUTS: u64 = 20_000;

struct Args {
    secs: f64,
    targets: Vec<String>,
    seed: u64,
    crashes: PathBuf,
    worker: bool,
    replay: Vec<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: pbr-fuzz [--secs N] [--target NAME]... [--seed N] [--crashes DIR]\n       \
         pbr-fuzz --replay TARGET FILE...\ntargets: {}",
        TARGETS.join(", ")
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let env_secs = std::env::var("PBR_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let mut a = Args {
        secs: env_secs,
        targets: Vec::new(),
        seed: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1),
        crashes: pbr_fuzz::repo_root().join("fuzz").join("crashes"),
        worker: false,
        replay: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(w) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match w.as_str() {
            "--secs" => a.secs = val().parse().unwrap_or_else(|_| usage()),
            "--target" => a.targets.push(val()),
            "--seed" => a.seed = val().parse().unwrap_or_else(|_| usage()),
            "--crashes" => a.crashes = PathBuf::from(val()),
            "--worker" => a.worker = true,
            "--replay" => {
                a.targets.push(val());
                a.replay.extend(it.by_ref().map(PathBuf::from));
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    for t in &a.targets {
        if !TARGETS.contains(&t.as_str()) && t != pbr_fuzz::SELFTEST {
            eprintln!("pbr-fuzz: unknown target `{t}`");
            usage();
        }
    }
    if a.targets.is_empty() {
        a.targets = TARGETS.iter().map(|s| s.to_string()).collect();
    }
    a
}

fn main() -> ExitCode {
    let a = parse_args();
    pbr_fuzz::harden();
    if !a.replay.is_empty() {
        for f in &a.replay {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            eprintln!("replaying {} through {}", f.display(), a.targets[0]);
            if let Err(e) = run(&a.targets[0], &data) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        eprintln!("no panic");
        return ExitCode::SUCCESS;
    }
    if a.worker {
        return worker(&a);
    }
    supervise(&a)
}

/// Run mutated inputs of one target until `--secs` pass or [`WORKER_INPUTS`] ran.
fn worker(a: &Args) -> ExitCode {
    let target = a.targets[0].clone();
    let dir = a.crashes.join(&target);
    let _ = std::fs::create_dir_all(&dir);
    let mut current = match std::fs::File::create(dir.join(".current")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pbr-fuzz: cannot write {}: {e}", dir.join(".current").display());
            return ExitCode::from(3);
        }
    };
    let pool = seeds(&target);
    let mut m = Mutator::new(&target, a.seed);
    let deadline = Instant::now() + Duration::from_secs_f64(a.secs);
    // panics are reported by the supervisor, with the input; keep the worker's output short
    std::panic::set_hook(Box::new(|info| {
        eprintln!("PANIC: {info}");
    }));
    let mut n: u64 = 0;
    while n < WORKER_INPUTS && Instant::now() < deadline {
        let data = if n < pool.len() as u64 {
            // every seed as it is first
            pool[n as usize].clone()
        } else {
            let base = &pool[m.rng.below(pool.len())];
            let other = &pool[m.rng.below(pool.len())];
            m.mutate(base, other)
        };
        let _ = current.seek(SeekFrom::Start(0));
        let _ = current.write_all(&data);
        let _ = current.set_len(data.len() as u64);
        if std::panic::catch_unwind(|| run(&target, &data)).is_err() {
            let _ = current.sync_all();
            return ExitCode::from(101);
        }
        n += 1;
    }
    println!("{n}");
    ExitCode::SUCCESS
}

fn save(dir: &Path, kind: &str) -> Option<PathBuf> {
    let data = std::fs::read(dir.join(".current")).ok()?;
    let p = dir.join(format!("{kind}-{}", input_name(&data)));
    std::fs::write(&p, &data).ok()?;
    Some(p)
}

fn supervise(a: &Args) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pbr-fuzz: cannot find myself: {e}");
            return ExitCode::from(3);
        }
    };
    let hang =
        Duration::from_secs_f64(std::env::var("PBR_FUZZ_HANG_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20.0));
    let share = a.secs / a.targets.len() as f64;
    let mut seed = a.seed;
    let mut found: Vec<String> = Vec::new();
    eprintln!("pbr-fuzz: {:.0} s over {} (seed {})", a.secs, a.targets.join(", "), a.seed);
    for target in &a.targets {
        let dir = a.crashes.join(target);
        let until = Instant::now() + Duration::from_secs_f64(share);
        let mut inputs: u64 = 0;
        let mut workers = 0;
        while Instant::now() < until {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let left = until.saturating_duration_since(Instant::now()).as_secs_f64();
            let mut child = match Command::new(&exe)
                .args(["--worker", "--target", target, "--seed", &seed.to_string(), "--secs", &format!("{left:.3}")])
                .arg("--crashes")
                .arg(&a.crashes)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pbr-fuzz: cannot start a worker: {e}");
                    return ExitCode::from(3);
                }
            };
            workers += 1;
            let started = Instant::now();
            let mut last_change = (Instant::now(), None::<SystemTime>);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(st)) => break Some(st),
                    Ok(None) => {}
                    Err(_) => break None,
                }
                let mtime = std::fs::metadata(dir.join(".current")).and_then(|m| m.modified()).ok();
                if mtime != last_change.1 {
                    last_change = (Instant::now(), mtime);
                }
                if last_change.0.elapsed() > hang && started.elapsed() > hang {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let out = child.wait_with_output().ok();
            let stdout = out.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            let stderr = out.as_ref().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
            match status {
                Some(st) if st.success() => inputs += stdout.trim().parse::<u64>().unwrap_or(0),
                other => {
                    let kind = match other {
                        None => "hang",
                        Some(st) if st.code() == Some(101) => "panic",
                        Some(_) => "crash",
                    };
                    let saved = save(&dir, kind);
                    let what = match other {
                        None => format!("an input ran for over {hang:?}"),
                        Some(st) => format!("the worker ended with {st}"),
                    };
                    eprintln!("\n!!!!!!!! pbr-fuzz: {target}: {kind}: {what}\n{}", stderr.trim());
                    match &saved {
                        Some(p) => eprintln!(
                            "input saved to {}\nreplay: cargo run -p pbr-fuzz -- --replay {target} {}\n\
                             once fixed, keep it as a regression test: move it to fuzz/corpus/{target}/\n",
                            p.display(),
                            p.display()
                        ),
                        None => eprintln!("(the input could not be saved)"),
                    }
                    found.push(format!(
                        "{target}: {kind} ({})",
                        saved.map(|p| p.display().to_string()).unwrap_or_default()
                    ));
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(dir.join(".current"));
        eprintln!("pbr-fuzz: {target}: {inputs} inputs in {share:.0} s ({workers} workers)");
    }
    if found.is_empty() {
        eprintln!("pbr-fuzz: no panic, crash or hang");
        ExitCode::SUCCESS
    } else {
        eprintln!("pbr-fuzz: FAILED: {} problem(s):\n  {}", found.len(), found.join("\n  "));
        ExitCode::FAILURE
    }
}
