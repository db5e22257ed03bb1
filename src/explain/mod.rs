//! Explain (beside score): why a label scores as it does — heatmaps over the patch grid by
//! gradient-weighted attention (Chefer et al. 2021), Grad-CAM on the last block, or occlusion —
//! placed back on the original image. These are explanations of the model, not localisation
//! of disease.

mod colormap_tables;
pub mod faithfulness;
pub mod gallery;
pub mod geometry;
pub mod grad;
pub mod maps;
pub mod render;
