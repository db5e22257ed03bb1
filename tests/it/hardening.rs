//! Issue 11 (a new user's trial) through the real executable, one test per item and at least
//! two spellings of each: no input destroyed, no silently mixed results, Unix-style scripting.

use crate::support::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const PNG: &str = "tests/data/nih_00000001_000.png";
const PNG2: &str = "tests/data/nih_00027426_000_512.png";
const TINY: &str = "tiny-gelu-p14";
const WEIGHTS_SHA256: &str = "efd5a3f69b82a9eef1512c97c8ae0c933cba95740ebd26f8ec2776df19656698";

/// A scratch directory holding `a.png` and `b.png` (copies of real X-rays) and a `dir/` with
/// `c.png`; commands run inside it.
fn scratch() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(root().join(PNG), tmp.path().join("a.png")).unwrap();
    std::fs::copy(root().join(PNG2), tmp.path().join("b.png")).unwrap();
    std::fs::create_dir(tmp.path().join("dir")).unwrap();
    std::fs::copy(root().join(PNG), tmp.path().join("dir/c.png")).unwrap();
    tmp
}

/// whyxray `args` run in `cwd` with the tiny model.
fn wx(cwd: &Path, args: &[&str]) -> Output {
    run(cmd(cwd, args).arg("-m").arg(model_dir(TINY)))
}

fn cmd(cwd: &Path, args: &[&str]) -> Command {
    let mut c = whyxray();
    c.current_dir(cwd).args(args);
    c
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// Exit 2, nothing on stdout, and stderr says `needle`.
fn refused(o: &Output, needle: &str) {
    assert_eq!(code(o), Some(2), "{}", stderr(o));
    assert!(stdout(o).is_empty(), "{}", stdout(o));
    assert!(
        stderr(o).contains(needle),
        "wanted {needle:?} in: {}",
        stderr(o)
    );
}

/// Runs `c` with `bytes` on its stdin.
fn with_stdin(c: &mut Command, bytes: &[u8]) -> Output {
    use std::io::Write;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap()
}

fn csv_rows(text: &str) -> Vec<String> {
    text.lines().skip(1).map(String::from).collect()
}

// 1. An output that is one of the inputs, however spelled, is refused before anything is
// written.
#[test]
fn an_output_that_is_an_input_is_refused_and_left_untouched() {
    let t = scratch();
    let d = t.path();
    let before = std::fs::read(d.join("a.png")).unwrap();
    std::os::unix::fs::symlink(d.join("a.png"), d.join("link.csv")).unwrap();
    let abs = d.join("a.png").display().to_string();
    let list = d.join("list.txt");
    std::fs::write(&list, "a.png\n").unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["classify", "a.png", "-l", "a,b", "-o", "a.png"],
        vec!["classify", "a.png", "-l", "a,b", "-o", "./a.png"],
        vec!["classify", "a.png", "-l", "a,b", "-o", &abs],
        vec!["classify", "./dir/../a.png", "-l", "a,b", "-o", "a.png"],
        vec!["classify", "a.png", "-l", "a,b", "-o", "link.csv"],
        vec!["classify", "a.png", "-l", "a,b", "--meta", "a.png"],
        vec![
            "classify",
            "--files-from",
            "list.txt",
            "-l",
            "a,b",
            "-o",
            "a.png",
        ],
        vec!["embed", "a.png", "-o", "a.png"],
        vec!["inspect", "a.png", "-o", "a.png"],
    ];
    for args in &cases {
        // inspect takes no model options.
        let o = if args[0] == "inspect" {
            run(&mut cmd(d, args))
        } else {
            wx(d, args)
        };
        refused(&o, "one of the inputs");
        assert_eq!(std::fs::read(d.join("a.png")).unwrap(), before, "{args:?}");
    }
    // A directory given as input: an image-named output inside it would be read back.
    let c = std::fs::read(d.join("dir/c.png")).unwrap();
    refused(
        &wx(d, &["classify", "dir", "-l", "a,b", "-o", "dir/c.png"]),
        "inside the input directory",
    );
    refused(
        &wx(d, &["classify", "dir", "-l", "a,b", "-o", "dir/new.png"]),
        "inside the input directory",
    );
    assert_eq!(std::fs::read(d.join("dir/c.png")).unwrap(), c);
    assert!(!d.join("dir/new.png").exists());
    // Paths from stdin are not known in advance: an existing image is never overwritten.
    let mut piped = cmd(d, &["classify", "-", "-l", "a,b", "-o", "a.png", "-m"]);
    let o = with_stdin(piped.arg(model_dir(TINY)), b"a.png\n");
    refused(&o, "existing PNG image");
    assert_eq!(std::fs::read(d.join("a.png")).unwrap(), before);
    // Two outputs in one file, and the truth of eval or probe as an output.
    refused(
        &wx(
            d,
            &[
                "classify", "a.png", "-l", "a,b", "-o", "s.csv", "--meta", "./s.csv",
            ],
        ),
        "two outputs",
    );
    std::fs::write(d.join("truth.csv"), "file,label\na.png,a\n").unwrap();
    let truth = std::fs::read(d.join("truth.csv")).unwrap();
    refused(
        &wx(
            d,
            &[
                "eval",
                "--truth",
                "truth.csv",
                "a.png",
                "-l",
                "a,b",
                "--json",
                "truth.csv",
            ],
        ),
        "one of the inputs",
    );
    refused(
        &wx(
            d,
            &[
                "probe",
                "fit",
                "--truth",
                "truth.csv",
                "a.png",
                "-o",
                "truth.csv",
            ],
        ),
        "one of the inputs",
    );
    assert_eq!(std::fs::read(d.join("truth.csv")).unwrap(), truth);
}

// 2. --resume refuses a file made with other settings, and keeps the first run's record.
#[test]
fn resume_refuses_other_settings_and_keeps_the_first_record() {
    let t = scratch();
    let d = t.path();
    let first = wx(
        d,
        &[
            "classify",
            "a.png",
            "b.png",
            "-l",
            "a,b",
            "-o",
            "s.csv",
            "--batch-size",
            "1",
        ],
    );
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    let full = std::fs::read_to_string(d.join("s.csv")).unwrap();
    // As a kill after the first row would leave it.
    let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("s.csv"), &cut).unwrap();
    let differ: [(&[&str], &str); 7] = [
        (&["--dtype", "bf16"], "dtype"),
        (&["--logit-scale", "50"], "classify/logit_scale"),
        (&["--logit-scale", "model"], "classify/logit_scale_source"),
        (&["--template", "an x-ray of {}"], "classify/classes"),
        (&["--window", "minmax"], "decode/window"),
        (&["--ensemble", "mean-similarity"], "classify/ensemble"),
        (&["--multilabel"], "classify/multilabel"),
    ];
    for (extra, needle) in differ {
        let mut args = vec![
            "classify", "a.png", "b.png", "-l", "a,b", "-o", "s.csv", "--resume",
        ];
        args.extend(extra);
        refused(&wx(d, &args), needle);
        assert_eq!(
            std::fs::read_to_string(d.join("s.csv")).unwrap(),
            cut,
            "{extra:?}"
        );
    }
    // Another model: the same labels, other weights.
    let mut other = cmd(
        d,
        &[
            "classify", "a.png", "b.png", "-l", "a,b", "-o", "s.csv", "--resume", "-m",
        ],
    );
    other.arg(model_dir("tiny-gelu-p16-bilinear"));
    refused(&run(&mut other), "model/identity");
    let meta_before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s.csv.meta.json")).unwrap()).unwrap();
    // The same settings: carries on, and the record says both runs.
    let again = wx(
        d,
        &[
            "classify", "a.png", "b.png", "-l", "a,b", "-o", "s.csv", "--resume",
        ],
    );
    assert_eq!(code(&again), Some(0), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(d.join("s.csv")).unwrap(), full);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s.csv.meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["argv"], meta_before["argv"],
        "the first run's record is kept"
    );
    assert_eq!(meta["finished"], meta_before["finished"]);
    let resumed = meta["resumed"].as_array().unwrap();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["finished"]["scored"], 1);
    assert!(resumed[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--resume"));
    // Rows but no record: nothing says how they were made.
    std::fs::write(d.join("s.csv"), &cut).unwrap();
    std::fs::remove_file(d.join("s.csv.meta.json")).unwrap();
    refused(
        &wx(
            d,
            &[
                "classify", "a.png", "b.png", "-l", "a,b", "-o", "s.csv", "--resume",
            ],
        ),
        "cannot be read",
    );
    // embed's jsonl too.
    let e = wx(
        d,
        &[
            "embed",
            "a.png",
            "b.png",
            "-o",
            "e.jsonl",
            "--batch-size",
            "1",
        ],
    );
    assert_eq!(code(&e), Some(0), "{}", stderr(&e));
    refused(
        &wx(
            d,
            &[
                "embed", "a.png", "b.png", "-o", "e.jsonl", "--resume", "--window", "minmax",
            ],
        ),
        "decode/window",
    );
}

// 3. Only a reader that went away is a quiet 0; a stdout that cannot be written is exit 2.
#[test]
fn a_closed_or_full_stdout_is_an_error_not_a_silent_0() {
    let bin = env!("CARGO_BIN_EXE_whyxray");
    let m = model_dir(TINY);
    for (redirect, needle) in [
        (">&-", "stdout is closed"),
        ("> /dev/full", "No space left"),
    ] {
        for sub in ["classify a.png -l a,b", "embed --text x", "inspect a.png"] {
            let t = scratch();
            let model = if sub.starts_with("inspect") {
                String::new()
            } else {
                format!("-m '{}'", m.display())
            };
            let script = format!("exec '{bin}' {sub} {model} {redirect}");
            let o = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .current_dir(t.path())
                .env("HF_HUB_OFFLINE", "1")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(code(&o), Some(2), "{script}: {}", stderr(&o));
            assert!(stderr(&o).contains(needle), "{script}: {}", stderr(&o));
        }
    }
}

// 4. An input given twice has a row per occurrence, in plain and resumed runs alike.
#[test]
fn a_duplicated_input_has_a_row_per_occurrence_also_when_resumed() {
    let t = scratch();
    let d = t.path();
    let args = [
        "classify",
        "a.png",
        "a.png",
        "b.png",
        "./a.png",
        "-l",
        "a,b",
        "-o",
        "dd.csv",
        "--batch-size",
        "1",
    ];
    let plain = wx(d, &args);
    assert_eq!(code(&plain), Some(0), "{}", stderr(&plain));
    let full = std::fs::read_to_string(d.join("dd.csv")).unwrap();
    assert_eq!(csv_rows(&full).len(), 4);
    let mut resume = args.to_vec();
    resume.push("--resume");
    let again = wx(d, &resume);
    assert_eq!(code(&again), Some(0), "{}", stderr(&again));
    assert_eq!(
        std::fs::read_to_string(d.join("dd.csv")).unwrap(),
        full,
        "nothing cut, nothing added"
    );
    assert!(
        stderr(&again).contains("nothing left to score"),
        "{}",
        stderr(&again)
    );
    // Killed after the first a.png: the second is still to do.
    let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("dd.csv"), cut).unwrap();
    let again = wx(d, &resume);
    assert_eq!(code(&again), Some(0), "{}", stderr(&again));
    let rows = csv_rows(&std::fs::read_to_string(d.join("dd.csv")).unwrap());
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("a.png,")).count(),
        2,
        "{rows:?}"
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
}

// 5. `-o -` is stdout everywhere; nothing is written beside stdout or a device.
#[test]
fn dash_means_stdout_and_devices_get_no_sidecar() {
    let t = scratch();
    let d = t.path();
    let o = wx(d, &["classify", "a.png", "-l", "a,b", "-o", "-"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("file,a,b,error\n"), "{}", stdout(&o));
    let o = wx(d, &["embed", "a.png", "-o", "-", "--meta", "run.json"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("{\"file\":\"a.png\""),
        "{}",
        stdout(&o)
    );
    // --meta still writes where asked: the record of this run, finished.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
    assert_eq!(meta["command"], "embed", "{meta}");
    assert_eq!(meta["finished"]["scored"], 1, "{meta}");
    assert_eq!(meta["finished"]["failed"], 0, "{meta}");
    // sha256sum of tests/fixtures/models/tiny-gelu-p14/open_clip_model.safetensors
    assert_eq!(
        meta["model"]["identity"]["weights_sha256"], WEIGHTS_SHA256,
        "{meta}"
    );
    let o = run(&mut cmd(d, &["inspect", "a.png", "-o", "-"]));
    assert!(stdout(&o).starts_with("a.png: PNG"), "{}", stdout(&o));
    assert!(!d.join("-").exists() && !d.join("-.meta.json").exists());
    let o = wx(d, &["classify", "a.png", "-l", "a,b", "-o", "/dev/null"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(!Path::new("/dev/null.meta.json").exists());
    let o = wx(
        d,
        &["classify", "a.png", "-l", "a,b", "-o", "s.csv", "--no-meta"],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(d.join("s.csv").is_file() && !d.join("s.csv.meta.json").exists());
    refused(
        &wx(d, &["embed", "a.png", "--format", "npy", "-o", "-"]),
        "needs -o FILE",
    );
    refused(
        &wx(
            d,
            &["classify", "a.png", "-l", "a,b", "-o", "-", "--resume"],
        ),
        "not stdout",
    );
}

// 6. The output's extension picks the format; a contradicting --format is an error.
#[test]
fn the_extension_of_o_picks_the_format() {
    let t = scratch();
    let d = t.path();
    let o = wx(d, &["embed", "a.png", "-o", "f.npy"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(d.join("f.npy"))
        .unwrap()
        .starts_with(b"\x93NUMPY"));
    let o = wx(d, &["classify", "a.png", "-l", "a,b", "-o", "s.JSONL"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(d.join("s.JSONL"))
        .unwrap()
        .starts_with("{\"file\""));
    let o = wx(d, &["classify", "a.png", "-l", "a,b", "-o", "s.tsv"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(d.join("s.tsv"))
        .unwrap()
        .starts_with("file\ta\tb\terror"));
    let o = run(&mut cmd(d, &["inspect", "a.png", "-o", "i.jsonl"]));
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(d.join("i.jsonl"))
        .unwrap()
        .starts_with("{\"file\""));
    refused(
        &wx(
            d,
            &[
                "classify", "a.png", "-l", "a,b", "--format", "csv", "-o", "x.jsonl",
            ],
        ),
        "contradicts",
    );
    refused(
        &wx(d, &["embed", "a.png", "--format", "jsonl", "-o", "x.npy"]),
        "contradicts",
    );
    refused(
        &wx(d, &["classify", "a.png", "-l", "a,b", "-o", "x.npy"]),
        "does not write npy",
    );
    assert!(!d.join("x.jsonl").exists() && !d.join("x.npy").exists());
}

// 7. Sidecars are named by appending to the output's name; the old name is still read.
#[test]
fn sidecars_append_to_the_output_name_and_old_names_still_read() {
    let t = scratch();
    let d = t.path();
    let o = wx(d, &["embed", "a.png", "b.png", "-o", "feats.npy"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(d.join("feats.npy.paths.tsv").is_file() && d.join("feats.npy.meta.json").is_file());
    std::fs::write(d.join("truth.csv"), "file,label\na.png,x\nb.png,y\n").unwrap();
    let fit = |out: &str| {
        run(&mut cmd(
            d,
            &[
                "probe",
                "fit",
                "--embeddings",
                "feats.npy",
                "--truth",
                "truth.csv",
                "--c",
                "1",
                "-o",
                out,
            ],
        ))
    };
    let new = fit("p1.json");
    assert_eq!(code(&new), Some(0), "{}", stderr(&new));
    std::fs::rename(d.join("feats.npy.paths.tsv"), d.join("feats.paths.tsv")).unwrap();
    let old = fit("p2.json");
    assert_eq!(code(&old), Some(0), "{}", stderr(&old));
    let coef = |f: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap();
        v["coef"].clone()
    };
    assert_eq!(coef("p1.json"), coef("p2.json"));
}

// 8. The table lines up by display width, wide characters and long names included.
#[test]
fn the_table_lines_up_by_display_width() {
    let t = scratch();
    let d = t.path();
    std::fs::copy(root().join(PNG), d.join("胸部写真.png")).unwrap();
    std::fs::create_dir_all(d.join("a/very/long/folder/name/that/goes/on")).unwrap();
    let long = "a/very/long/folder/name/that/goes/on/and_on_and_on_x.png";
    std::fs::copy(root().join(PNG), d.join(long)).unwrap();
    for batch in ["1", "8"] {
        let o = wx(
            d,
            &[
                "classify",
                "a.png",
                "胸部写真.png",
                long,
                "-l",
                "a,肺炎",
                "--format",
                "table",
                "--batch-size",
                batch,
            ],
        );
        assert_eq!(code(&o), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // Every line's columns end at the same display column.
        let ends: Vec<usize> = lines
            .iter()
            .map(|l| unicode_width::UnicodeWidthStr::width(l.rsplit_once("  ").unwrap().0))
            .collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}\n{text}");
        assert!(text.contains("胸部写真.png"), "{text}");
        assert!(
            text.contains("and_on_x.png"),
            "the file name is kept: {text}"
        );
    }
}

// 9. What the command line, truth, probe and config tell is checked before the weights are
// read: a model with corrupt weights shows which came first.
#[test]
fn mistakes_are_found_before_the_weights_are_read() {
    let t = scratch();
    let d = t.path();
    let broken = d.join("broken-model");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(
        model_dir(TINY).join("open_clip_config.json"),
        broken.join("open_clip_config.json"),
    )
    .unwrap();
    std::fs::write(
        broken.join("open_clip_pytorch_model.bin"),
        b"PK\x03\x04garbage",
    )
    .unwrap();
    let with = |args: &[&str]| {
        let mut c = cmd(d, args);
        run(c.arg("-m").arg(&broken))
    };
    // The broken model itself fails when loaded (so the cases below prove an earlier check).
    refused(
        &with(&["classify", "a.png", "-l", "a,b"]),
        "cannot read weights",
    );
    refused(
        &with(&["classify", "a.png", "-l", "a,b", "-o", "nodir/x.csv"]),
        "directory nodir does not exist",
    );
    refused(
        &with(&["classify", "a.png", "-l", "a,b", "-o", "dir"]),
        "is a directory",
    );
    refused(
        &with(&["embed", "a.png", "-o", "nodir/x.jsonl"]),
        "does not exist",
    );
    std::fs::write(d.join("truth.csv"), "file,label\na.png,fracture\n").unwrap();
    refused(
        &with(&["eval", "--truth", "truth.csv", "a.png", "-l", "a,b"]),
        "\"fracture\" is not one of the scored classes",
    );
    std::fs::write(d.join("multi.csv"), "file,a,c\na.png,1,0\n").unwrap();
    refused(
        &with(&["eval", "--truth", "multi.csv", "a.png", "-l", "a,b"]),
        "truth column \"c\"",
    );
    // A probe of another model is refused before any image is embedded.
    let e = wx(d, &["embed", "a.png", "b.png", "-o", "f.npy"]);
    assert_eq!(code(&e), Some(0), "{}", stderr(&e));
    std::fs::write(d.join("t2.csv"), "file,label\na.png,x\nb.png,y\n").unwrap();
    let f = run(&mut cmd(
        d,
        &[
            "probe",
            "fit",
            "--embeddings",
            "f.npy",
            "--truth",
            "t2.csv",
            "--c",
            "1",
            "-o",
            "p.json",
        ],
    ));
    assert_eq!(code(&f), Some(0), "{}", stderr(&f));
    refused(
        &with(&["probe", "predict", "--probe", "p.json", "a.png"]),
        "refusing to apply it",
    );
    refused(
        &with(&[
            "probe",
            "fit",
            "--truth",
            "multi.csv",
            "a.png",
            "-o",
            "q.json",
        ]),
        "probe fit needs a `file,label` truth",
    );
}

// 10. Labels the tokenizer makes identical, and prompts cut at 77 tokens, are named.
#[test]
fn labels_that_tokenize_alike_and_cut_prompts_are_warned_about() {
    let t = scratch();
    let d = t.path();
    let long = "word ".repeat(80);
    let (long_a, long_b) = (format!("{long} a"), format!("{long} b"));
    let cases: [(&str, &str); 4] = [
        ("a", "A"),
        ("\u{fb01}nding", "finding"),
        ("caf\u{e9}", "cafe\u{301}"),
        (&long_a, &long_b),
    ];
    for (x, y) in cases {
        std::fs::write(d.join("l.txt"), format!("{x}\n{y}\n")).unwrap();
        let o = wx(d, &["classify", "a.png", "--labels-file", "l.txt"]);
        assert_eq!(code(&o), Some(0), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("are the same tokens to the model"),
            "{x:?}/{y:?}: {}",
            stderr(&o)
        );
        let row = csv_rows(&stdout(&o))[0].clone();
        let probs: Vec<&str> = row.split(',').collect();
        assert_eq!(probs[probs.len() - 3], probs[probs.len() - 2], "{row}");
    }
    std::fs::write(d.join("l.txt"), format!("{long_a}\nother\n")).unwrap();
    let o = wx(d, &["classify", "a.png", "--labels-file", "l.txt"]);
    assert!(
        stderr(&o).contains("tokens, more than the text tower's 77"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("same tokens"), "{}", stderr(&o));
    let o = wx(d, &["embed", "--text", &long_a]);
    assert!(
        stderr(&o).contains("more than the text tower's 77"),
        "{}",
        stderr(&o)
    );
}

// 11. Finding nothing to score says so and exits 3; an empty shard or a finished resume is 0.
#[test]
fn finding_nothing_exits_3_with_a_message() {
    let t = scratch();
    let d = t.path();
    std::fs::create_dir(d.join("empty")).unwrap();
    let stdin_empty = wx(d, &["classify", "-", "-l", "a,b"]);
    for o in [
        wx(d, &["classify", "empty", "-l", "a,b"]),
        wx(d, &["classify", "dir", "-l", "a,b", "--include", "*.jpg"]),
        stdin_empty,
        wx(d, &["embed", "empty", "-q"]),
        run(&mut cmd(d, &["inspect", "empty"])),
    ] {
        assert_eq!(code(&o), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains("found no images"), "{}", stderr(&o));
    }
    // An empty shard is a normal part of a split run.
    let shards: Vec<Output> = (0..8)
        .map(|k| {
            wx(
                d,
                &[
                    "classify",
                    "a.png",
                    "-l",
                    "a,b",
                    "--shard",
                    &format!("{k}/8"),
                ],
            )
        })
        .collect();
    assert!(
        shards.iter().all(|o| code(o) == Some(0)),
        "{:?}",
        shards.iter().map(stderr).collect::<Vec<_>>()
    );
    assert_eq!(
        shards
            .iter()
            .filter(|o| stderr(o).contains("this shard holds none"))
            .count(),
        7
    );
}

// 12. A window that flattens a varied image is warned about, in classify and inspect.
#[test]
fn a_window_that_flattens_the_image_is_warned_about() {
    let cr = image_path("dicom/nema_rg1_cr_chest_mono1_16bit.dcm", "shared");
    let cr = cr.to_str().unwrap();
    let d = root();
    let o = wx(&d, &["classify", cr, "-l", "a,b", "--window", "cw:40,400"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("leaves the image constant"),
        "{}",
        stderr(&o)
    );
    let o = run(&mut cmd(
        &d,
        &["inspect", cr, "--window", "cw:40,400", "--format", "jsonl"],
    ));
    assert!(
        stdout(&o).contains("leaves the image constant"),
        "{}",
        stdout(&o)
    );
    let png16 = "tests/data/nema_rg1_chest_16bit_half.png";
    let o = run(&mut cmd(
        &d,
        &["inspect", png16, "--window", "cw:100000,10"],
    ));
    assert!(
        stdout(&o).contains("leaves the image constant"),
        "{}",
        stdout(&o)
    );
    let o = run(&mut cmd(&d, &["inspect", cr, png16, PNG]));
    assert!(
        !stdout(&o).contains("constant"),
        "the default windows do not trip it: {}",
        stdout(&o)
    );
}

// 13. A key given twice in a prompts file is refused, naming it.
#[test]
fn a_repeated_key_in_a_prompts_file_is_refused() {
    let t = scratch();
    let d = t.path();
    std::fs::write(
        d.join("p.json"),
        r#"{"edema": ["x"], "effusion": "y", "edema": "z"}"#,
    )
    .unwrap();
    refused(
        &wx(d, &["classify", "a.png", "--prompts", "p.json"]),
        "\"edema\" appears twice",
    );
    std::fs::write(
        d.join("q.json"),
        r#"{"a": {"pos": ["x"], "neg": ["n"], "neg": ["m"]}, "b": "y"}"#,
    )
    .unwrap();
    refused(
        &wx(
            d,
            &["classify", "a.png", "--prompts", "q.json", "--multilabel"],
        ),
        "\"neg\" appears twice",
    );
}

// 14. Options that would do nothing are refused.
#[test]
fn options_that_would_do_nothing_are_refused() {
    let t = scratch();
    let d = t.path();
    std::fs::write(d.join("s.csv"), "file,a,b,error\na.png,0.4,0.6,\n").unwrap();
    std::fs::write(d.join("truth.csv"), "file,label\na.png,a\n").unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--truth", "truth.csv", "--scores", "s.csv"];
        args.extend(extra);
        run(&mut cmd(d, &args))
    };
    assert_eq!(code(&eval(&[])), Some(0));
    refused(
        &eval(&["-o", "y.csv"]),
        "--output does nothing with --scores",
    );
    refused(&eval(&["--template", "x {}"]), "--template does nothing");
    refused(&eval(&["--window", "minmax"]), "--window does nothing");
    refused(&eval(&["-m", "x/y"]), "--model does nothing");
    refused(
        &eval(&["--bootstrap", "0", "--seed", "3"]),
        "--seed does nothing with --bootstrap 0",
    );
    assert!(!d.join("y.csv").exists());
    let e = wx(d, &["embed", "a.png", "b.png", "-o", "f.npy"]);
    assert_eq!(code(&e), Some(0), "{}", stderr(&e));
    std::fs::write(d.join("t2.csv"), "file,label\na.png,x\nb.png,y\n").unwrap();
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "probe",
            "fit",
            "--embeddings",
            "f.npy",
            "--truth",
            "t2.csv",
            "-o",
            "p.json",
        ];
        args.extend(extra);
        run(&mut cmd(d, &args))
    };
    let o = fit(&["--resume"]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    refused(
        &fit(&["--batch-size", "4"]),
        "--batch-size does nothing with --embeddings",
    );
    refused(&fit(&["--c", "1", "--cs", "1,2"]), "cannot be used with");
    refused(&fit(&["--c", "1", "--folds", "3"]), "cannot be used with");
    refused(
        &run(&mut cmd(d, &["inspect", "a.png", "-m", "x/y"])),
        "--model does nothing for inspect",
    );
    refused(
        &run(&mut cmd(d, &["--device", "cpu", "inspect", "a.png"])),
        "--device does nothing for inspect",
    );
}

// 15. A path after --labels or --text is not silently a label.
#[test]
fn an_image_path_is_not_silently_a_label_or_text() {
    let t = scratch();
    let d = t.path();
    refused(
        &wx(d, &["classify", "--labels", "a,b", "a.png"]),
        "--labels=",
    );
    refused(
        &wx(d, &["classify", "b.png", "--labels", "a,b", "a.png"]),
        "is an image path",
    );
    refused(
        &wx(d, &["classify", "b.png", "-l", "a", "b", "scans/x.dcm"]),
        "is an image path",
    );
    refused(&wx(d, &["embed", "--text", "foo", "a.png"]), "--text=");
    std::fs::write(d.join("notes"), "x").unwrap();
    refused(
        &wx(d, &["embed", "--text", "foo", "notes"]),
        "an existing file",
    );
    // The attached form keeps the value list short, so inputs may follow.
    let o = wx(d, &["classify", "--labels=a,b", "a.png"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
}

// 16. Models are identified by what they are: the hub id and its snapshot directory agree.
#[test]
fn a_probe_accepts_the_same_model_under_another_name() {
    let t = scratch();
    let d = t.path();
    let hub = root().join("tests/fixtures/hub");
    let snapshot =
        hub.join("models--yyupenn--whyxrayclip/snapshots/19b84b7eef98d8a68ab5c8caf12786010d451bb0");
    let copy = d.join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["open_clip_config.json", "open_clip_pytorch_model.bin"] {
        std::fs::copy(snapshot.join(f), copy.join(f)).unwrap();
    }
    std::fs::write(
        d.join("t.csv"),
        "file,label\na.png,x\nb.png,y\ndir/c.png,x\n",
    )
    .unwrap();
    let fit = run(cmd(
        d,
        &[
            "probe",
            "fit",
            "a.png",
            "b.png",
            "dir/c.png",
            "--truth",
            "t.csv",
            "--c",
            "1",
            "-o",
            "p.json",
        ],
    )
    .env("HF_HUB_CACHE", &hub));
    assert_eq!(code(&fit), Some(0), "{}", stderr(&fit));
    for model in [&snapshot, &copy] {
        let mut c = cmd(d, &["probe", "predict", "--probe", "p.json", "a.png", "-m"]);
        let o = run(c.arg(model));
        assert_eq!(code(&o), Some(0), "{}: {}", model.display(), stderr(&o));
    }
    // The same tensors in another file (safetensors) are another weights file: refused.
    let mut c = cmd(d, &["probe", "predict", "--probe", "p.json", "a.png", "-m"]);
    refused(&run(c.arg(model_dir(TINY))), "refusing to apply it");
    let probe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("p.json")).unwrap()).unwrap();
    assert_eq!(
        probe["model"]["identity"]["weights_sha256"],
        "015663f6ccbba0894d9729cbe531b5dace6c86b5ad86573369c353ed4fbf5787"
    );
}

// 17. Messages: dangling links, JPEG-LS, a failed download once, negative numbers.
#[test]
fn messages_name_the_real_cause() {
    let t = scratch();
    let d = t.path();
    std::os::unix::fs::symlink(d.join("gone.png"), d.join("dir/dangling.png")).unwrap();
    std::os::unix::fs::symlink(d.join("gone.png"), d.join("dangling.png")).unwrap();
    let o = wx(d, &["classify", "dir", "dangling.png", "-l", "a,b"]);
    assert_eq!(code(&o), Some(1), "{}", stderr(&o));
    let rows = csv_rows(&stdout(&o));
    let broken: Vec<&String> = rows
        .iter()
        .filter(|r| r.contains("broken symbolic link"))
        .collect();
    assert_eq!(broken.len(), 2, "{rows:?}");
    assert!(!stdout(&o).contains("cannot read directory"));
    let jls = root().join("tests/data/dicom/synthetic_multiframe_12bit_jpegls.dcm");
    if !cfg!(feature = "jpeg-ls") {
        let o = run(&mut cmd(d, &["inspect", jls.to_str().unwrap()]));
        assert!(stdout(&o).contains("--features jpeg-ls"), "{}", stdout(&o));
    }
    // A hub that reads each request and hangs up without an answer (kept open: a port bound
    // and dropped could be taken by another process before the run connects; reading the
    // request first makes the client see an orderly close, not a reset that races its write).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::BufRead;
        for s in listener.incoming().flatten() {
            let mut r = std::io::BufReader::new(s);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let o = run(cmd(d, &["classify", "a.png", "-l", "a,b"])
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_ENDPOINT", &url));
    assert_eq!(code(&o), Some(2));
    let err = stderr(&o);
    assert_eq!(err.matches("cannot download model").count(), 1, "{err}");
    assert!(
        err.contains(&format!("{url}/api/models/yyupenn/whyxrayclip")),
        "{err}"
    );
    refused(
        &wx(
            d,
            &["classify", "a.png", "-l", "a,b", "--logit-scale", "-1"],
        ),
        "--logit-scale must be a positive number",
    );
    refused(
        &wx(d, &["classify", "a.png", "-l", "a,b", "--shard", "-1/2"]),
        "--shard must be K/N",
    );
    refused(
        &wx(
            d,
            &["classify", "a.png", "-l", "a,b", "--max-megapixels", "-5"],
        ),
        "must be a positive number",
    );
    for o in [
        wx(
            d,
            &["classify", "a.png", "-l", "a,b", "--logit-scale", "-1"],
        ),
        wx(d, &["classify", "a.png", "-l", "a,b", "--shard", "-1/2"]),
    ] {
        assert!(!stderr(&o).contains("-- -1"), "{}", stderr(&o));
    }
}

// 18. Help pages: grouped options, no model options where no model is loaded.
#[test]
fn help_pages_group_options_and_say_only_what_applies() {
    let help = |args: &[&str]| stdout(&run(whyxray().args(args)));
    let inspect = help(&["inspect", "--help"]);
    for absent in ["--model", "--device", "--dtype", "--offline", "--revision"] {
        assert!(!inspect.contains(absent), "inspect --help shows {absent}");
    }
    let classify = help(&["classify", "--help"]);
    for heading in [
        "Inputs:",
        "Decoding:",
        "Labels and prompts:",
        "Output:",
        "Model:",
        "Run:",
    ] {
        assert!(
            classify.contains(heading),
            "classify --help lacks {heading}"
        );
    }
    for args in [
        &["embed", "--help"][..],
        &["probe", "fit", "--help"],
        &["probe", "predict", "--help"],
    ] {
        let text = help(args);
        assert!(!text.contains("Also score"), "{args:?}");
        assert!(text.contains("--files-from"), "{args:?}");
    }
}

// 19. A UTF-8 byte order mark is dropped from every text input.
#[test]
fn a_byte_order_mark_is_dropped_everywhere() {
    let t = scratch();
    let d = t.path();
    std::fs::write(d.join("labels.txt"), "\u{feff}edema\neffusion\n").unwrap();
    std::fs::write(
        d.join("truth.csv"),
        "\u{feff}file,label\na.png,edema\nb.png,effusion\n",
    )
    .unwrap();
    std::fs::write(d.join("list.txt"), "\u{feff}a.png\nb.png\n").unwrap();
    let o = wx(
        d,
        &[
            "eval",
            "--truth",
            "truth.csv",
            "--files-from",
            "list.txt",
            "--labels-file",
            "labels.txt",
            "-o",
            "s.csv",
            "--bootstrap",
            "0",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let s = std::fs::read_to_string(d.join("s.csv")).unwrap();
    assert!(s.starts_with("file,edema,effusion,error\na.png,"), "{s}");
    let mut piped = cmd(d, &["classify", "-", "-l", "a,b", "-m"]);
    let o = with_stdin(piped.arg(model_dir(TINY)), "\u{feff}a.png\n".as_bytes());
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
}

// 20. eval --label-column reads a truth with extra columns.
#[test]
fn eval_label_column_picks_the_truth_column() {
    let t = scratch();
    let d = t.path();
    std::fs::write(
        d.join("truth.csv"),
        "file,finding,source\na.png,edema,nih\nb.png,effusion,nih\n",
    )
    .unwrap();
    std::fs::write(
        d.join("s.csv"),
        "file,edema,effusion,error\na.png,0.7,0.3,\nb.png,0.2,0.8,\n",
    )
    .unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--truth",
            "truth.csv",
            "--scores",
            "s.csv",
            "--json",
            "-",
        ];
        args.extend(extra);
        run(&mut cmd(d, &args))
    };
    let o = eval(&[]);
    refused(&o, "pass --label-column finding");
    let o = eval(&["--label-column", "finding"]);
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["accuracy"]["value"], 1.0);
    refused(&eval(&["--label-column", "nope"]), "no column \"nope\"");
}

// 21. -0/--null: NUL-separated paths on stdin and in --files-from.
#[test]
fn null_separated_lists() {
    let t = scratch();
    let d = t.path();
    std::fs::copy(root().join(PNG), d.join("with\nnewline.png")).unwrap();
    std::fs::write(d.join("list0"), b"a.png\0with\nnewline.png\0").unwrap();
    let o = wx(
        d,
        &[
            "classify",
            "--files-from",
            "list0",
            "-0",
            "-l",
            "a,b",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let files: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["file"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(files, ["a.png", "with\nnewline.png"]);
    let mut piped = cmd(
        d,
        &[
            "classify", "-", "--null", "-l", "a,b", "--format", "jsonl", "-m",
        ],
    );
    let o = with_stdin(piped.arg(model_dir(TINY)), b"b.png\0a.png\0");
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2);
}

// 8 (continued). On a terminal, a result row never shares a line with the progress bar:
// run under `script`, which gives stdout and stderr one pseudo-terminal.
#[test]
fn result_rows_never_share_a_line_with_the_bar() {
    let t = scratch();
    let d = t.path();
    for i in 0..24 {
        std::fs::copy(root().join(PNG2), d.join(format!("dir/img{i:02}.png"))).unwrap();
    }
    let line = format!(
        "'{}' classify dir -l a,b -m '{}' --batch-size 2 -j 1",
        env!("CARGO_BIN_EXE_whyxray"),
        model_dir(TINY).display()
    );
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(d)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the command on a pseudo-terminal");
    assert_eq!(code(&o), Some(0), "{}", stderr(&o));
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(raw.contains("images"), "the bar was drawn: {raw}");
    let mut rows = 0;
    for segment in raw.split('\n') {
        // What stays visible on a line: the text after its last clear or carriage return.
        let visible = segment.rsplit(['\r']).find(|s| !s.is_empty()).unwrap_or("");
        let visible = visible.rsplit("\x1b[2K").next().unwrap_or("");
        if visible.contains(".png") {
            rows += 1;
            assert!(
                !visible.contains("images,"),
                "a row shares the bar's line: {visible:?}"
            );
            assert!(visible.starts_with("dir/"), "{visible:?}");
        }
    }
    assert_eq!(rows, 25, "{raw}");
}
