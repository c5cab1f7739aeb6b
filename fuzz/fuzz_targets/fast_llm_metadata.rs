//! Fast-LLM `metadata.yaml` reading: no input panics or aborts; a base model that loads survives
//! its own YAML (written, read back, loaded: the same config), and exports to every format of its
//! model kind (or is rejected) and plans its weights within small limits.
#![no_main]

use std::path::Path;

use fastllm_convert::checkpoint::convert::fast_llm_config;
use fastllm_convert::config::{Form, Value, load_base_model, parse_document};
use fastllm_convert::core::weights::{PlanLimits, plan_within};
use fastllm_convert::core::{HfLayout, handlers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(Value::Map(metadata)) = parse_document(text, Some("yaml")) else {
        return;
    };
    let Ok(config) = fast_llm_config(Path::new("metadata.yaml"), &metadata) else {
        return;
    };
    let explicit = Value::Map(config.to_form(Form::Explicit));
    let yaml = explicit.to_yaml();
    let back = Value::from_yaml_str(&yaml).expect("our YAML reads back");
    assert!(back == explicit, "YAML round trip changed the config:\n{yaml}");
    let reloaded = load_base_model(config.kind(), &back).expect("an explicit form reloads");
    assert!(reloaded == config, "explicit form does not reload to the same config");
    let limits = PlanLimits::checkpoint(4096, 1 << 24);
    for handler in handlers().into_iter().filter(|h| h.model == config.kind()) {
        if handler.export(&config, HfLayout::V4).is_ok() {
            let _ = plan_within(&handler.converter().base_model, &config, &limits);
        }
    }
});
