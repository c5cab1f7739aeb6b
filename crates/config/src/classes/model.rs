//! The root base-model configs and the vision encoder
//! (Fast-LLM `models/{gpt,multimodal}/config.py`, `layers/vision/config.py`).

use fastllm_config_derive::Config;

use super::block::{BlockSequenceConfig, MlpBaseConfig};
use super::common::{AffineLinearConfig, NormalizationConfig, PeftConfig};
use super::language_model::{LanguageModelEmbeddingsConfig, LanguageModelHeadConfig};
use crate::checks::positive;
use crate::{ClassRules, FieldSet};

/// Pixel normalization of images (no hints; the default tuples are always written).
#[derive(Debug, Clone, Config)]
#[config(class = "ImageNormalizationConfig")]
pub struct ImageNormalizationConfig {
    #[field(default = 255.0)]
    pub scale: f64,
    #[field(default = [0.48145466, 0.4578275, 0.40821073])]
    pub mean: [f64; 3],
    #[field(default = [0.26862954, 0.26130258, 0.27577711])]
    pub std: [f64; 3],
    pub explicit: FieldSet,
}
impl ClassRules for ImageNormalizationConfig {}

/// Image patches to vectors.
#[derive(Debug, Clone, Config)]
#[config(class = "PatchEmbeddingsConfig")]
pub struct PatchEmbeddingsConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    /// Bias off unless enabled.
    #[field(hint = architecture)]
    pub patch_embeddings: AffineLinearConfig,
    #[field(hint = architecture)]
    pub normalization: NormalizationConfig,
    #[field(hint = architecture, default = 16)]
    pub patch_height: i64,
    #[field(hint = architecture, default = 16)]
    pub patch_width: i64,
    #[field(hint = stability, default = false)]
    pub full_precision_residual: bool,
    pub explicit: FieldSet,
}
impl ClassRules for PatchEmbeddingsConfig {}

impl PatchEmbeddingsConfig {
    /// Image channels (hard-coded RGB in Fast-LLM).
    pub const INPUT_CHANNELS: i64 = 3;
}

/// The vision tower: patch embeddings, encoder blocks and the adapter into the text model.
#[derive(Debug, Clone, Config)]
#[config(class = "VisionEncoderConfig")]
pub struct VisionEncoderConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub embeddings: PatchEmbeddingsConfig,
    #[field(hint = architecture)]
    pub encoder: BlockSequenceConfig,
    #[field(hint = architecture)]
    pub adapter: MlpBaseConfig,
    #[field(hint = feature)]
    pub normalization: ImageNormalizationConfig,
    #[field(hint = architecture, default = 1024, check = positive)]
    pub hidden_size: i64,
    pub explicit: FieldSet,
}
impl ClassRules for VisionEncoderConfig {}

/// Fast-LLM `GPTBaseModelConfig`: the decoder-only language model.
#[derive(Debug, Clone, Config)]
#[config(class = "GPTBaseModelConfig")]
pub struct GptBaseModelConfig {
    #[field(hint = feature, default = None)]
    pub lr_scale: Option<f64>,
    #[field(hint = architecture)]
    pub decoder: BlockSequenceConfig,
    #[field(hint = architecture)]
    pub embeddings: LanguageModelEmbeddingsConfig,
    #[field(hint = architecture)]
    pub head: LanguageModelHeadConfig,
    #[field(hint = architecture, default = false)]
    pub tied_embedding_weight: bool,
    #[field(hint = architecture, default = 1024, check = positive)]
    pub hidden_size: i64,
    #[field(hint = architecture)]
    pub peft: PeftConfig,
    #[field(hint = testing, default = false)]
    pub use_megatron_initialization: bool,
    pub explicit: FieldSet,
}
impl ClassRules for GptBaseModelConfig {}

/// Fast-LLM `MultiModalBaseModelConfig`: the language model (a GPT base model, whose fields come
/// first) plus a vision encoder.
#[derive(Debug, Clone, Config)]
#[config(class = "MultiModalBaseModelConfig")]
pub struct MultiModalBaseModelConfig {
    #[config(base)]
    pub base: GptBaseModelConfig,
    /// Never absent: built from `{}` when not given.
    #[field(hint = architecture)]
    pub vision_encoder: VisionEncoderConfig,
    #[field(hint = optional, default = None)]
    pub image_token_index: Option<i64>,
    pub explicit: FieldSet,
}
impl ClassRules for MultiModalBaseModelConfig {}

/// The text model of a root config (GPT or multimodal: the same fields), read typed.
#[derive(Debug, Clone, Copy)]
pub struct TextModel<'a> {
    /// `decoder`.
    pub decoder: &'a BlockSequenceConfig,
    /// `embeddings`.
    pub embeddings: &'a LanguageModelEmbeddingsConfig,
    /// `head`.
    pub head: &'a LanguageModelHeadConfig,
    /// `tied_embedding_weight`.
    pub tied_embedding_weight: bool,
    /// `hidden_size`.
    pub hidden_size: i64,
    /// `peft`.
    pub peft: &'a PeftConfig,
}

impl GptBaseModelConfig {
    /// Its text model's fields (a multimodal root's too, through its GPT base).
    pub fn text_model(&self) -> TextModel<'_> {
        TextModel {
            decoder: &self.decoder,
            embeddings: &self.embeddings,
            head: &self.head,
            tied_embedding_weight: self.tied_embedding_weight,
            hidden_size: self.hidden_size,
            peft: &self.peft,
        }
    }
}
