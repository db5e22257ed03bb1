//! The command-line contract (shared/CLI.md) through the real executable: formats, streams,
//! exit codes, hub-cache resolution offline, and failures that name their cause.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

const PNG: &str = "tests/data/nih_00000001_000.png";
const PNG2: &str = "tests/data/nih_00027426_000_512.png";

fn classify(model: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .arg("classify")
        .args(args)
        .arg("-m")
        .arg(model);
    run(&mut cmd)
}

#[test]
fn classify_csv_matches_open_clip_probabilities() {
    let m = "tiny-gelu-p14";
    let out = classify(
        &model_dir(m),
        &[PNG, PNG2, "--labels", &labels(m), "--format", "csv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "a header and two rows: {text}");
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), format!("file,{},error", labels(m)));
    for (line, image) in lines
        .by_ref()
        .zip(["nih_00000001_000.png", "nih_00027426_000_512.png"])
    {
        let d = max_abs_diff(&scored_row(line, image), &expected_row(m, image));
        assert!(d <= 5e-5, "{image}: {d}");
    }
    assert!(lines.next().is_none());
}

#[test]
fn classify_model_logit_scale_and_jsonl() {
    let m = "tiny-quickgelu-p32-squash";
    let out = classify(
        &model_dir(m),
        &[
            PNG,
            "--labels",
            &labels(m),
            "--format",
            "jsonl",
            "--logit-scale",
            "model",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["file"], PNG);
    assert!(v["error"].is_null());
    let scores = v["scores"].as_object().unwrap();
    let keys: Vec<&str> = scores.keys().map(String::as_str).collect();
    assert_eq!(keys.join(","), labels(m), "label order kept");
    let got: Vec<f32> = scores
        .values()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let (_, _, i) = images(m)
        .into_iter()
        .find(|(n, _, _)| n == "nih_00000001_000.png")
        .unwrap();
    let want = &matrix(&model_expected(m)["probs_scale_model"])[i];
    assert!(max_abs_diff(&got, want) <= 5e-5, "{got:?} vs {want:?}");
    let top = keys[got
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0];
    assert_eq!(v["top"], top);
}

#[test]
fn bad_inputs_get_error_rows_and_exit_1_while_others_are_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let truncated = tmp.path().join("cut.png");
    let png = std::fs::read(root().join(PNG)).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let empty = tmp.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let (t, c, e) = (
        text.to_str().unwrap(),
        truncated.to_str().unwrap(),
        empty.to_str().unwrap(),
    );
    let m = model_dir("tiny-gelu-p14");
    let out = classify(
        &m,
        &[
            t,
            PNG,
            "missing.png",
            c,
            e,
            PNG2,
            "-l",
            "a,b",
            "--format",
            "csv",
            "--batch-size",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 6, "{text}");
    let err = stderr(&out);
    for (row, (file, ok)) in rows.iter().zip([
        (t, false),
        (PNG, true),
        ("missing.png", false),
        (c, false),
        (e, false),
        (PNG2, true),
    ]) {
        assert!(row.starts_with(file), "{row} should be {file}");
        assert_eq!(row.ends_with(','), ok, "{row}");
        if !ok {
            assert!(err.contains(file), "stderr names {file}: {err}");
        }
    }
    assert!(rows[2].contains("No such file"), "{}", rows[2]);
    assert!(rows[4].contains("empty file"), "{}", rows[4]);
}

#[test]
fn default_model_resolves_from_a_hub_cache_offline() {
    let hub = root().join("tests/fixtures/hub");
    let commit = expected()["hub_commit"].as_str().unwrap();
    let m = "tiny-gelu-p14";
    for rev in ["main", commit] {
        let mut cmd = whyxray();
        cmd.current_dir(root())
            .env("HF_HUB_CACHE", &hub)
            .env("HF_HUB_OFFLINE", "1");
        cmd.args([
            "classify",
            PNG,
            "--labels",
            &labels(m),
            "--format",
            "csv",
            "--revision",
            rev,
            "-v",
        ]);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(commit),
            "resolved commit is reported: {}",
            stderr(&out)
        );
        let line = stdout(&out).lines().nth(1).unwrap().to_string();
        let probs: Vec<f32> = line
            .split(',')
            .skip(1)
            .take(5)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(max_abs_diff(&probs, &expected_row(m, "nih_00000001_000.png")) <= 5e-5);
    }
    // HF_HOME/hub is the next place Python looks.
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&hub, home.path().join("hub")).unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env_remove("HF_HUB_CACHE")
        .env("HF_HOME", home.path());
    cmd.args(["--offline", "classify", PNG, "-l", "a,b"])
        .env_remove("HF_HUB_OFFLINE");
    assert_eq!(run(&mut cmd).status.code(), Some(0));
}

#[test]
fn offline_with_nothing_cached_fails_at_once_naming_the_path() {
    let empty = tempfile::tempdir().unwrap();
    // A hub that would answer: "at once" means it is never asked, not a wall-clock limit.
    let hub = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hub.set_nonblocking(true).unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env("HF_HUB_CACHE", empty.path())
        .env(
            "HF_ENDPOINT",
            format!("http://{}", hub.local_addr().unwrap()),
        )
        .env_remove("HF_HUB_OFFLINE");
    cmd.args(["--offline", "classify", PNG, "-l", "a,b"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let looked = empty.path().join("models--yyupenn--whyxrayclip/refs/main");
    assert!(
        err.contains(&looked.display().to_string()) && err.contains("offline"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert!(
        matches!(hub.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "--offline connected to the hub"
    );
}

#[test]
fn fatal_model_problems_exit_2_with_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model_dir("tiny-gelu-p14");
    let cfg = std::fs::read_to_string(src.join("open_clip_config.json")).unwrap();
    let cases = [
        ("no weights", cfg.clone(), None, "has no weights"),
        (
            "shape",
            cfg.replacen("\"width\": 64", "\"width\": 128", 1),
            Some("open_clip_model.safetensors"),
            "visual.conv1.weight",
        ),
        (
            "unknown key",
            cfg.replacen(
                "\"patch_size\": 14",
                "\"patch_size\": 14, \"attentional_pool\": true",
                1,
            ),
            Some("open_clip_model.safetensors"),
            "vision_cfg.attentional_pool",
        ),
        (
            "corrupt bin",
            cfg.clone(),
            Some("corrupt"),
            "cannot read weights",
        ),
    ];
    for (what, config, weights, needle) in cases {
        let dir = tmp.path().join(what.replace(' ', "_"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("open_clip_config.json"), config).unwrap();
        match weights {
            Some("corrupt") => std::fs::write(
                dir.join("open_clip_pytorch_model.bin"),
                b"PK\x03\x04garbage",
            )
            .unwrap(),
            Some(f) => std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap(),
            None => {}
        }
        let out = classify(&dir, &[PNG, "-l", "a,b"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{what}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{what}");
    }
}

#[test]
fn usage_errors_exit_2() {
    // Each with the words its message must hold.
    let cuda_missing: &[&str] = if cfg!(feature = "cuda") {
        &["--device cuda:0"] // a CUDA build on a machine without a GPU or driver
    } else {
        &["built without CUDA support", "--features cuda"]
    };
    for (args, needles) in [
        (vec!["classify", PNG, "-l", "only-one"], &["at least 2"][..]),
        (vec!["classify", PNG], &["--labels a,b"][..]),
        (
            vec!["--device", "cuda", "classify", PNG, "-l", "a,b"],
            cuda_missing,
        ),
        (
            vec!["classify", PNG, "-l", "a,b", "--format", "xml"],
            &["xml"][..],
        ),
    ] {
        let mut cmd = whyxray();
        cmd.current_dir(root())
            .args(&args)
            .arg("-m")
            .arg(model_dir("tiny-gelu-p14"));
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
        for n in needles {
            assert!(stderr(&out).contains(n), "{args:?}: {}", stderr(&out));
        }
    }
}

#[test]
fn help_says_research_use_only() {
    for args in [
        &["--help"][..],
        &["classify", "--help"],
        &["embed", "--help"],
    ] {
        let out = run(whyxray().args(args));
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("not for diagnosis"), "{args:?}");
    }
}

#[test]
fn embed_jsonl_images_then_texts_and_npy_rows_in_the_same_order() {
    let m = "tiny-gelu-p14";
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root()).args([
        "embed",
        PNG,
        "nope.png",
        "--text",
        "pleural effusion",
        "enlarged heart",
        "-m",
    ]);
    cmd.arg(model_dir(m));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["file"], PNG);
    assert!(lines[1]["embedding"].is_null() && lines[1]["error"].is_string());
    assert_eq!(lines[2]["text"], "pleural effusion");
    let e = model_expected(m);
    let (_, _, i) = images(m)
        .into_iter()
        .find(|(n, _, _)| n == "nih_00000001_000.png")
        .unwrap();
    let img: Vec<f32> = serde_json::from_value(lines[0]["embedding"].clone()).unwrap();
    assert!(one_minus_cos(&img, &matrix(&e["image_embeddings"])[i]) <= 1e-9);
    let txt: Vec<f32> = serde_json::from_value(lines[2]["embedding"].clone()).unwrap();
    assert!(one_minus_cos(&txt, &matrix(&e["text_embeddings"])[1]) <= 1e-9);

    let npy = tmp.path().join("feats.npy");
    let mut cmd = whyxray();
    let texts = ["pleural effusion", "enlarged heart"];
    cmd.current_dir(root())
        .args(["embed", PNG, "nope.png", "--text"])
        .args(texts)
        .args(["--format", "npy", "-o"]);
    cmd.arg(&npy).arg("-m").arg(model_dir(m));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let bytes = std::fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(std::str::from_utf8(&bytes[10..10 + header_len])
        .unwrap()
        .contains("'shape': (4, 32)"));
    let data: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), 4 * 32);
    assert_eq!(
        &data[..32],
        img.as_slice(),
        "jsonl and npy carry the same float32 values"
    );
    assert!(data[32..64].iter().all(|v| v.is_nan()));
    assert_eq!(&data[64..96], txt.as_slice());
}

#[test]
fn directories_and_stdin_lists_keep_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::copy(root().join(PNG), tmp.path().join("sub/b.PNG")).unwrap();
    std::fs::copy(root().join(PNG2), tmp.path().join("a.png")).unwrap();
    std::fs::write(tmp.path().join("readme.txt"), "x").unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .arg("classify")
        .arg(tmp.path())
        .arg("-")
        .args(["-l", "a,b", "--format", "tsv", "-m"]);
    cmd.arg(model_dir("tiny-gelu-p14"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PNG2}\n\n{PNG}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files: Vec<String> = stdout(&out)
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let d = tmp.path().display();
    assert_eq!(
        files,
        [
            format!("{d}/a.png"),
            format!("{d}/sub/b.PNG"),
            PNG2.into(),
            PNG.into()
        ]
    );
}

#[test]
fn output_file_gets_results_and_stdout_stays_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("out.csv");
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .args(["classify", PNG, "-l", "a,b", "-o"])
        .arg(&csv);
    cmd.arg("-m").arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).is_empty());
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("file,a,b,error\n") && text.ends_with(",\n"),
        "{text}"
    );
}

#[test]
fn a_closed_stdout_pipe_ends_quietly_with_0() {
    let mut cmd = whyxray();
    cmd.current_dir(root()).args([
        "classify",
        PNG,
        PNG2,
        PNG,
        "-l",
        "a,b",
        "--batch-size",
        "1",
        "-m",
    ]);
    cmd.arg(model_dir("tiny-gelu-p14"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away before the first row is written
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn huge_declared_dimensions_are_refused_before_decoding() {
    // A valid PNG header declaring 30000 x 30000 pixels.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&30000u32.to_be_bytes());
    png.extend_from_slice(&30000u32.to_be_bytes());
    png.extend_from_slice(&[8, 0, 0, 0, 0]);
    let crc = crc32(&png[12..]);
    png.extend_from_slice(&crc.to_be_bytes());
    // A first IDAT (a few bytes of zlib data) so the header parses, then the file just ends.
    let idat = [b"IDAT".as_slice(), &[0x78, 0x9c, 0x63, 0x00, 0x00]].concat();
    png.extend_from_slice(&5u32.to_be_bytes());
    png.extend_from_slice(&idat);
    png.extend_from_slice(&crc32(&idat).to_be_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.png");
    std::fs::write(&path, &png).unwrap();
    let out = classify(
        &model_dir("tiny-gelu-p14"),
        &[path.to_str().unwrap(), "-l", "a,b", "--format", "csv"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("30000 x 30000"), "{}", stdout(&out));
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_bin_checkpoint_is_converted_once_and_read_back_identically() {
    let cache = tempfile::tempdir().unwrap();
    let m = model_dir("tiny-quickgelu-p32-squash"); // ships only a DDP-wrapped .bin
    let run_once = || {
        let mut cmd = whyxray();
        cmd.current_dir(root()).env("WHYXRAY_CACHE", cache.path());
        cmd.args(["classify", PNG, PNG2, "-l", "a,b", "--format", "csv", "-m"])
            .arg(&m);
        run(&mut cmd)
    };
    let first = run_once();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let converted: Vec<_> = std::fs::read_dir(cache.path().join("converted"))
        .unwrap()
        .collect();
    assert_eq!(converted.len(), 1, "one converted file");
    let second = run_once();
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&first), stdout(&second));
}

/// A 1 x 100,000 strip: open_clip's answer comes from PIL resampling the crop's source box
/// (tests/fixtures/make_strip_reference.py, which checks that shortcut against the whole resize).
#[test]
fn an_extreme_aspect_ratio_is_resized_within_the_crop_only() {
    let m = "tiny-gelu-p14";
    let text = std::fs::read_to_string(root().join("tests/fixtures/expected/strip.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let strip = tmp.path().join("strip.png");
    let img = image::GrayImage::from_fn(1, 100_000, |_, y| image::Luma([(y % 251) as u8]));
    img.save(&strip).unwrap();
    let out = classify(
        &model_dir(m),
        &[strip.to_str().unwrap(), "-l", &labels(m), "--format", "csv"],
    );
    // Resizing it whole would make a 224 x 22,400,000 intermediate (5 GB).
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    let got = scored_row(rows[1], "strip.png");
    let want: Vec<f32> = serde_json::from_value(reference["probs_scale_100"].clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{text}");
    let d = max_abs_diff(&got, &want);
    // Measured 9.1e-7 (2026-12).
    assert!(
        d <= 5e-6,
        "probabilities differ from open_clip's by {d}: {text}"
    );
}

#[test]
fn a_run_with_no_inputs_writes_the_header_says_so_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = classify(
        &model_dir("tiny-gelu-p14"),
        &[
            tmp.path().to_str().unwrap(),
            "-l",
            "a,b",
            "--format",
            "csv",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "file,a,b,error\n");
    assert!(
        stderr(&out).contains("found no images to score"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn window_option_none_refuses_high_bit_data_and_percentile_works() {
    let png16 = "tests/data/nema_rg1_chest_16bit_half.png";
    let m = model_dir("tiny-gelu-p14");
    let none = classify(
        &m,
        &[
            png16, PNG, "-l", "a,b", "--format", "csv", "--window", "none",
        ],
    );
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(stdout(&none).contains("--window none needs 8-bit data"));
    let pct = classify(
        &m,
        &[
            png16,
            "-l",
            "a,b",
            "--format",
            "csv",
            "--window",
            "percentile:1,99",
        ],
    );
    assert_eq!(pct.status.code(), Some(0), "{}", stderr(&pct));
    assert_eq!(stdout(&pct).lines().count(), 2, "{}", stdout(&pct));
    // numpy 2.4.6: np.percentile(np.asarray(Image.open(png16)), [1, 99]) == [9983.0, 30628.0]
    // (linear interpolation, numpy's default), read with Pillow 13.
    let mut cmd = whyxray();
    cmd.current_dir(root()).args([
        "inspect",
        png16,
        "--window",
        "percentile:1,99",
        "--format",
        "jsonl",
    ]);
    let seen = run(&mut cmd);
    let row: serde_json::Value = serde_json::from_str(stdout(&seen).trim()).unwrap();
    assert_eq!(row["window"], "percentile 1,99: 9983..30628", "{row}");
    assert_eq!(row["range_after"], serde_json::json!([0, 255]), "{row}");
    let bad = classify(&m, &[png16, "-l", "a,b", "--window", "percentile:99,1"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `--logit-scale 50`: the softmax of 50 x the cosines of open_clip's own normalised image and
/// text embeddings (expected.json), and `--labels-file` gives the same rows as `--labels`.
#[test]
fn a_numeric_logit_scale_and_a_labels_file() {
    let m = "tiny-gelu-p14";
    let e = model_expected(m);
    let (_, _, i) = images(m)
        .into_iter()
        .find(|(n, _, _)| n == "nih_00000001_000.png")
        .unwrap();
    let img = &matrix(&e["image_embeddings"])[i];
    let logits: Vec<f64> = matrix(&e["text_embeddings"])
        .iter()
        .map(|t| {
            50.0 * t
                .iter()
                .zip(img)
                .map(|(a, b)| f64::from(a * b))
                .sum::<f64>()
        })
        .collect();
    let top = logits.iter().cloned().fold(f64::MIN, f64::max);
    let z: f64 = logits.iter().map(|l| (l - top).exp()).sum();
    let want: Vec<f32> = logits
        .iter()
        .map(|l| ((l - top).exp() / z) as f32)
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("labels.txt");
    std::fs::write(&list, labels(m).replace(',', "\n") + "\n").unwrap();
    let by_flag = classify(
        &model_dir(m),
        &[
            PNG,
            "--labels",
            &labels(m),
            "--format",
            "csv",
            "--logit-scale",
            "50",
        ],
    );
    let by_file = classify(
        &model_dir(m),
        &[
            PNG,
            "--labels-file",
            list.to_str().unwrap(),
            "--format",
            "csv",
            "--logit-scale",
            "50",
        ],
    );
    assert_eq!(by_flag.status.code(), Some(0), "{}", stderr(&by_flag));
    assert_eq!(
        stdout(&by_flag),
        stdout(&by_file),
        "--labels-file = --labels"
    );
    let text = stdout(&by_flag);
    assert_eq!(text.lines().count(), 2, "{text}");
    let got: Vec<f32> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .take(want.len())
        .map(|v| v.parse().unwrap())
        .collect();
    // float32 noise of the embeddings, as for scale 100 (measured 1e-5 there).
    assert!(max_abs_diff(&got, &want) <= 5e-5, "{got:?} vs {want:?}");
}

/// HF_HUB_OFFLINE as huggingface_hub reads it: ON, YES and TRUE in any case mean offline.
#[test]
fn hf_hub_offline_spellings() {
    let empty = tempfile::tempdir().unwrap();
    // A hub that would answer: offline means it is never asked.
    let hub = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hub.set_nonblocking(true).unwrap();
    for v in ["ON", "yes", "True", "1"] {
        let mut cmd = whyxray();
        cmd.current_dir(root())
            .env("HF_HUB_CACHE", empty.path())
            .env(
                "HF_ENDPOINT",
                format!("http://{}", hub.local_addr().unwrap()),
            )
            .env("HF_HUB_OFFLINE", v)
            .args(["classify", PNG, "-l", "a,b"]);
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{v}");
        assert!(stderr(&out).contains("offline"), "{v}: {}", stderr(&out));
        assert!(
            matches!(hub.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "HF_HUB_OFFLINE={v} connected to the hub"
        );
    }
}

/// `--max-megapixels`: an image over the limit is an error row naming its size and the
/// option; the others are scored (exit 1).
#[test]
fn max_megapixels_refuses_only_the_large_image() {
    let m = "tiny-gelu-p14";
    let out = classify(
        &model_dir(m),
        &[
            PNG,
            PNG2,
            "-l",
            "a,b",
            "--format",
            "csv",
            "--max-megapixels",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[1].starts_with(&format!("{PNG},,,"))
            && rows[1]
                .contains("1024 x 1024 pixels, over the 0.5-megapixel limit (--max-megapixels)"),
        "{text}"
    );
    assert!(
        rows[2].starts_with(PNG2) && rows[2].ends_with(','),
        "{text}"
    );
}

/// The conversion cache of a `.bin` checkpoint goes to `$WHYXRAY_CACHE`, else
/// `$XDG_CACHE_HOME/whyxray`, else `~/.cache/whyxray` (README, "Models, the cache").
#[test]
fn the_cache_falls_back_to_xdg_then_home() {
    let bin_only = model_dir("tiny-quickgelu-p32-squash");
    let (xdg, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with = |cmd: &mut std::process::Command| {
        cmd.current_dir(root())
            .env_remove("WHYXRAY_CACHE")
            .args(["classify", PNG, "-l", "a,b", "-q", "-m"])
            .arg(&bin_only);
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    with(
        whyxray()
            .env("XDG_CACHE_HOME", xdg.path())
            .env("HOME", home.path()),
    );
    assert!(xdg.path().join("whyxray/converted").is_dir());
    assert!(
        !home.path().join(".cache").exists(),
        "XDG_CACHE_HOME wins over HOME"
    );
    with(
        whyxray()
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", home.path()),
    );
    assert!(home.path().join(".cache/whyxray/converted").is_dir());
}

/// `inspect` names a file it cannot read and exits 1, describing the others.
#[test]
fn inspect_exits_1_when_a_file_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .args(["inspect", "--format", "jsonl"])
        .arg(&junk)
        .arg(PNG);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0]["error"]
        .as_str()
        .unwrap()
        .contains("not a PNG, JPEG, TIFF or DICOM"));
    assert_eq!(rows[1]["file"], PNG);
    assert!(rows[1]["error"].is_null());
    assert!(stderr(&out).contains("junk.png"));
}

/// `--dtype bf16` on the CLI runs the model in bf16: near open_clip's float32 probabilities,
/// but not bit-equal to the float32 run (so the option is not ignored).
#[test]
fn dtype_on_the_command_line_is_applied() {
    let m = "tiny-gelu-p14";
    let l = labels(m);
    let args = |dt: &'static str| vec![PNG, "--labels", &l, "--format", "csv", "--dtype", dt];
    let f32_ = classify(&model_dir(m), &args("f32"));
    let bf16 = classify(&model_dir(m), &args("bf16"));
    assert_eq!(bf16.status.code(), Some(0), "{}", stderr(&bf16));
    assert_ne!(
        stdout(&f32_),
        stdout(&bf16),
        "bf16 gave float32's exact output"
    );
    let got: Vec<f32> = stdout(&bf16)
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .take(expected_row(m, "nih_00000001_000.png").len())
        .map(|v| v.parse().unwrap())
        .collect();
    let d = max_abs_diff(&got, &expected_row(m, "nih_00000001_000.png"));
    assert!(d <= 0.05, "bf16 probabilities {got:?}: |dp| {d}");
}
