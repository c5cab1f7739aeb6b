//! HF `config.json` import for every registered format: no input panics or aborts, and whatever
//! imports round-trips (`import(export(c)) == c`) and plans its weights within small limits.
//! The first byte picks the format (past the last one: `--format auto`).
#![no_main]

use fastllm_convert::config::{Value, parse_document};
use fastllm_convert::core::weights::{PlanLimits, plan_within};
use fastllm_convert::core::{HfLayout, detect, handlers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(Value::Map(hf)) = parse_document(text, Some("json")) else {
        return;
    };
    let all = handlers();
    let handler = match all.get(usize::from(choice)) {
        Some(handler) => *handler,
        None => match detect(&hf) {
            Ok(handler) => handler,
            Err(_) => return,
        },
    };
    let Ok(config) = handler.import(&hf) else { return };
    for layout in [HfLayout::V4, HfLayout::V5] {
        let exported = handler.export(&config, layout).expect("an imported config exports");
        let again = handler.import(&exported).expect("an exported config imports");
        assert!(again == config, "import(export(c)) != c for {}", handler.name);
    }
    let limits = PlanLimits::checkpoint(4096, 1 << 24);
    let _ = plan_within(&handler.converter().base_model, &config, &limits);
});
