//! The real WhyXrayCLIP weights (1.7 GB, not in CI): ignored unless run by hand with
//! `WHYXRAY_REAL_MODEL` (hub id or directory) and `WHYXRAY_REAL_EXPECTED` (the JSON written by
//! tests/fixtures/real_model_reference.py from open_clip on the same weights).

use crate::support::*;

#[test]
#[ignore = "needs the real 1.7 GB WhyXrayCLIP weights: set WHYXRAY_REAL_MODEL and WHYXRAY_REAL_EXPECTED"]
fn matches_open_clip_on_the_real_weights() {
    let model = std::env::var("WHYXRAY_REAL_MODEL").expect("WHYXRAY_REAL_MODEL");
    let expected = std::env::var("WHYXRAY_REAL_EXPECTED").expect("WHYXRAY_REAL_EXPECTED");
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).unwrap();
    let images: Vec<String> = serde_json::from_value(e["images"].clone()).unwrap();
    let labels: Vec<String> = serde_json::from_value(e["labels"].clone()).unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE");
    cmd.args(["embed", "-m", &model])
        .args(&images)
        .arg("--text")
        .args(&labels);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<Vec<f32>> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_value(
                serde_json::from_str::<serde_json::Value>(l).unwrap()["embedding"].clone(),
            )
            .unwrap()
        })
        .collect();
    let (img, txt) = rows.split_at(images.len());
    for (got, want) in img
        .iter()
        .zip(matrix(&e["image_embeddings"]))
        .chain(txt.iter().zip(matrix(&e["text_embeddings"])))
    {
        assert!(
            one_minus_cos(got, &want) <= 1e-4,
            "1-cos {}",
            one_minus_cos(got, &want)
        );
    }
    for (i, row) in img.iter().enumerate() {
        let p = whyxray::score::probabilities(row, txt, 100.0);
        let d = max_abs_diff(&p, &matrix(&e["probs"])[i]);
        assert!(d <= 1e-4, "{}: |dp| {d}", images[i]);
    }
}
