//! The fuzz regression corpus: every file in `fuzz/corpus/<target>/` runs through its target
//! (inputs that once made pbr panic stay here, with the seeds), as a normal test.

use pbr_fuzz::{TARGETS, corpus_files, run};

#[test]
fn every_corpus_file_runs_without_a_panic() {
    let mut failed = Vec::new();
    let mut n = 0;
    for target in TARGETS {
        let files = corpus_files(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target}/ has no files");
        for f in files {
            let data = std::fs::read(&f).unwrap();
            n += 1;
            let t0 = std::time::Instant::now();
            match std::panic::catch_unwind(|| run(target, &data)) {
                // some inputs were hangs (quadratic work on a big inventory): they must stay fast
                Ok(Ok(())) if t0.elapsed() > std::time::Duration::from_secs(10) => {
                    failed.push(format!("{}: took {:?}", f.display(), t0.elapsed()))
                }
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(format!("{}: {e}", f.display())),
                Err(_) => failed.push(format!(
                    "{}: panicked (replay: cargo run -p pbr-fuzz -- --replay {target} {})",
                    f.display(),
                    f.display()
                )),
            }
        }
    }
    assert!(failed.is_empty(), "{} of {n} corpus inputs failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn unknown_targets_are_refused() {
    assert!(run("nope", b"").is_err());
}

#[test]
fn the_command_lookups_are_off_in_the_fuzzer() {
    // a template that would create a file if `pipe` ran
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let t = format!("{{{{ lookup('pipe', 'touch {}') }}}}", marker.display());
    run("template", t.as_bytes()).unwrap();
    assert!(!marker.exists(), "lookup('pipe') ran a command under the fuzzer");
}

/// The bounded run fails loudly and keeps the input, for a panic and for a crashed worker.
#[test]
fn the_fuzzer_saves_what_panics_or_crashes_and_fails() {
    for (seed, kind) in [("please panic", "panic"), ("please abort", "crash")] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbr-fuzz"))
            .args(["--secs", "5", "--target", pbr_fuzz::SELFTEST, "--crashes"])
            .arg(dir.path())
            .env("PBR_FUZZ_SELFTEST", seed)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{kind}: {err}");
        assert!(err.contains(&format!("selftest: {kind}")) && err.contains("FAILED"), "{kind}: {err}");
        let saved: Vec<_> = std::fs::read_dir(dir.path().join("selftest"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{kind}-")))
            .collect();
        assert_eq!(saved.len(), 1, "{kind}: {err}");
        assert_eq!(std::fs::read_to_string(saved[0].path()).unwrap(), seed);
    }
}
