//! Every primitive, both directions, on small sections of real Fast-LLM classes; plus section
//! composition, safe-set conflicts and the coverage checks (each shown failing when it should).

use std::collections::BTreeSet;
use std::sync::Arc;

use fastllm_core::config::{
    AttentionConfig, ConfigClass, DecoderBlockConfig, GptBaseModelConfig, Map, Reflect, RmsNormalizationConfig,
    StochasticMixerConfig, Value, load,
};
use fastllm_core::coverage::{architecture_gaps, check_hf_coverage, hf_claims, sentinel_errors};
use fastllm_core::engine::{Exporter, Importer};
use fastllm_core::{Claims, Covers, Decl, Fl, HfLayout, LayoutEntry, Problem, Section};
use rstest::rstest;

fn map(json: &str) -> Map {
    Value::from_json_str(json).unwrap().as_map().unwrap().clone()
}

/// `json` read as class `T`.
fn full<T: ConfigClass>(json: &str) -> T {
    load::<T>(&Value::from_json_str(json).unwrap()).unwrap()
}

fn export(section: &Section, fl: &dyn Reflect) -> Result<Map, Vec<Problem>> {
    let mut exporter = Exporter::new("test", HfLayout::V4);
    let mut hf = Map::new();
    exporter.section(section, Fl::new(fl), &mut hf);
    if exporter.problems.is_empty() {
        Ok(hf)
    } else {
        Err(exporter.problems)
    }
}

fn import(section: &Section, hf: &Map) -> Result<Map, Vec<Problem>> {
    let mut importer = Importer::new("test", hf);
    let mut out = Map::new();
    importer.section(section, hf, &mut out);
    if importer.problems.is_empty() {
        Ok(out)
    } else {
        Err(importer.problems)
    }
}

fn norm() -> Section {
    Section::of::<RmsNormalizationConfig>("test.norm")
        .add("epsilon", Decl::rename("epsilon", "eps"))
        .add("weight", Decl::ignored(&["weight"]))
        .add("zero_centered", Decl::const_import("zero_centered", Value::Bool(false)))
}

#[test]
fn rename_const_import_and_type_injection() {
    let fl = full::<RmsNormalizationConfig>(r#"{"epsilon": 1e-6}"#);
    let hf = export(&norm(), &fl).unwrap();
    assert_eq!(hf, map(r#"{"eps": 1e-6}"#));
    let back = import(&norm(), &hf).unwrap();
    assert_eq!(
        back,
        map(r#"{"type": "rms_norm", "epsilon": 1e-6, "zero_centered": false}"#)
    );
}

#[test]
fn const_import_rejects_other_values_on_export() {
    let fl = full::<RmsNormalizationConfig>(r#"{"zero_centered": true}"#);
    let problems = export(&norm(), &fl).unwrap_err();
    assert_eq!(problems[0].fast_llm.as_deref(), Some("zero_centered"));
    assert!(
        problems[0].message.contains("must be false, found true"),
        "{problems:?}"
    );
}

#[test]
fn a_section_only_accepts_its_class() {
    let section = Section::of::<AttentionConfig>("test.attention").add("heads", Decl::rename("heads", "n"));
    let fl = full::<StochasticMixerConfig>(r#"{"mixers": {"a": {}}}"#);
    let problems = export(&section, &fl).unwrap_err();
    assert_eq!(problems[0].fast_llm.as_deref(), Some("type"));
    assert!(problems[0].message.contains("holds a `attention`"), "{problems:?}");
}

#[test]
fn rename_needs_its_key_on_import() {
    let problems = import(&norm(), &Map::new()).unwrap_err();
    assert_eq!(problems[0].hf.as_deref(), Some("eps"));
}

#[test]
fn const_export_writes_and_checks() {
    let section = norm().add("kind", Decl::const_export("kind", Value::Str("rms".into())));
    let fl = full::<RmsNormalizationConfig>("{}");
    assert_eq!(export(&section, &fl).unwrap()["kind"], Value::Str("rms".into()));
    let problems = import(&section, &map(r#"{"eps": 1e-5, "kind": "layer"}"#)).unwrap_err();
    assert_eq!(problems[0].hf.as_deref(), Some("kind"));
    assert!(import(&section, &map(r#"{"eps": 1e-5}"#)).is_ok(), "absent is fine");
}

#[test]
fn default_falls_back_to_the_hf_dict() {
    let section = Section::of::<RmsNormalizationConfig>("test.norm").add(
        "epsilon",
        Decl::default("epsilon", "eps", |hf| {
            Ok(hf.get("base_eps").cloned().unwrap_or(Value::Float(1e-5)))
        }),
    );
    assert_eq!(
        import(&section, &map(r#"{"base_eps": 2e-6}"#)).unwrap()["epsilon"],
        Value::Float(2e-6)
    );
    assert_eq!(
        import(&section, &map(r#"{"eps": 3e-6}"#)).unwrap()["epsilon"],
        Value::Float(3e-6)
    );
    // Fast-LLM's Default takes a present `null` as a value.
    assert_eq!(
        import(&section, &map(r#"{"eps": null}"#)).unwrap()["epsilon"],
        Value::Null
    );
}

#[test]
fn optional_omits_the_sentinel() {
    let section = Section::of::<AttentionConfig>("test.attention").add(
        "window_size",
        Decl::optional("window_size", "sliding_window", Value::Null),
    );
    assert!(export(&section, &full::<AttentionConfig>("{}")).unwrap().is_empty());
    let hf = export(&section, &full::<AttentionConfig>(r#"{"window_size": 16}"#)).unwrap();
    assert_eq!(hf, map(r#"{"sliding_window": 16}"#));
    assert!(
        !import(&section, &map(r#"{"sliding_window": null}"#))
            .unwrap()
            .contains_key("window_size")
    );
}

#[test]
fn custom_and_import_only() {
    let section = Section::of::<AttentionConfig>("test.attention")
        .add(
            "heads",
            Decl::custom(
                Claims::exact(&["heads"], &["heads_x2"]),
                |fl, _| match fl.value("heads")? {
                    Value::Int(h) => Ok(vec![("heads_x2".to_string(), Value::Int(h * 2)).into()]),
                    _ => Err(vec![Problem::at_fast_llm("heads", "not an int")]),
                },
                |hf, _| match hf.get("heads_x2") {
                    Some(Value::Int(h)) if h % 2 == 0 => Ok(vec![("heads".into(), Value::Int(h / 2))]),
                    _ => Err(vec![Problem::at_hf("heads_x2", "odd")]),
                },
            ),
        )
        .add(
            "flag",
            Decl::import_only(&["causal"], &["flag"], Covers::Exact, |_, _| {
                Ok(vec![("causal".into(), Value::Bool(true))])
            }),
        );
    let hf = export(&section, &full::<AttentionConfig>(r#"{"heads": 6, "head_groups": 2}"#)).unwrap();
    assert_eq!(hf, map(r#"{"heads_x2": 12}"#), "import-only writes nothing on export");
    let back = import(&section, &hf).unwrap();
    assert_eq!(
        (back["heads"].clone(), back["causal"].clone()),
        (Value::Int(6), Value::Bool(true))
    );
    let problems = import(&section, &map(r#"{"heads_x2": 3}"#)).unwrap_err();
    assert_eq!(problems[0].hf.as_deref(), Some("heads_x2"));
}

#[test]
fn nested_flat_and_under_a_path() {
    let flat = Section::of::<DecoderBlockConfig>("test.block")
        .add("normalization", Decl::nested("normalization", norm().build()));
    let under = Section::of::<DecoderBlockConfig>("test.block").add(
        "normalization",
        Decl::nested_under("normalization", norm().hf_type("rms").build(), "norm"),
    );
    let fl = full::<DecoderBlockConfig>(r#"{"normalization": {"type": "rms_norm", "epsilon": 1e-6}}"#);
    assert_eq!(export(&flat, &fl).unwrap(), map(r#"{"eps": 1e-6}"#));
    let hf = export(&under, &fl).unwrap();
    assert_eq!(hf, map(r#"{"norm": {"type": "rms", "eps": 1e-6}}"#));
    let back = import(&under, &hf).unwrap();
    assert_eq!(back["normalization"].as_map().unwrap()["epsilon"], Value::Float(1e-6));
    let problems = import(&under, &map(r#"{"norm": {"type": "layer", "eps": 1e-6}}"#)).unwrap_err();
    assert_eq!(
        problems[0].hf.as_deref(),
        Some("norm.type"),
        "a wrong discriminator is named"
    );
}

fn attention_section() -> Arc<Section> {
    Section::of::<AttentionConfig>("test.attention")
        .hf_type("attn")
        .add("heads", Decl::rename("heads", "heads"))
        .build()
}

fn stochastic_section() -> Arc<Section> {
    Section::of::<StochasticMixerConfig>("test.stochastic")
        .hf_type("stochastic")
        .add(
            "mixers",
            Decl::typed_dict("mixers", "mixers", "type", vec![attention_section()]),
        )
        .add("main_mixer_name", Decl::rename("main_mixer_name", "main"))
        .build()
}

#[test]
fn dispatch_by_runtime_type() {
    let section = Section::of::<DecoderBlockConfig>("test.block").add(
        "mixer",
        Decl::dispatch(
            "mixer",
            Some("mixer"),
            "type",
            vec![attention_section(), stochastic_section()],
        ),
    );
    let fl = full::<DecoderBlockConfig>(r#"{"mixer": {"heads": 4, "head_groups": 2}}"#);
    let hf = export(&section, &fl).unwrap();
    assert_eq!(hf, map(r#"{"mixer": {"type": "attn", "heads": 4}}"#));
    assert_eq!(
        import(&section, &hf).unwrap()["mixer"].as_map().unwrap()["type"],
        Value::Str("attention".into())
    );
    let fl = full::<DecoderBlockConfig>(r#"{"mixer": {"type": "mamba"}}"#);
    let problems = export(&section, &fl).unwrap_err();
    assert!(
        problems[0].message.contains("supported: attention, stochastic"),
        "{problems:?}"
    );
    let problems = import(&section, &map(r#"{"mixer": {"type": "mamba"}}"#)).unwrap_err();
    assert_eq!(problems[0].hf.as_deref(), Some("mixer.type"));
}

#[test]
fn typed_dict_of_sections() {
    let fl = full::<StochasticMixerConfig>(
        r#"{"mixers": {"b": {"heads": 2, "head_groups": 2}, "a": {"heads": 4, "head_groups": 2}}}"#,
    );
    let section = stochastic_section();
    let hf = export(&section, &fl).unwrap();
    assert_eq!(
        hf,
        map(r#"{"mixers": {"a": {"type": "attn", "heads": 4}, "b": {"type": "attn", "heads": 2}}, "main": "a"}"#)
    );
    let back = import(&section, &hf).unwrap();
    let mixers = back["mixers"].as_map().unwrap();
    assert_eq!(mixers["b"].as_map().unwrap()["heads"], Value::Int(2));
}

#[test]
fn list_dispatch_fixed_and_pattern() {
    let block = |mixer: Arc<Section>| {
        Section::of::<DecoderBlockConfig>("test.block")
            .add("mixer", Decl::nested("mixer", mixer))
            .build()
    };
    let gdn = Section::of::<fastllm_core::config::GatedDeltaNetConfig>("test.gdn")
        .add("value_heads", Decl::rename("value_heads", "gdn_heads"))
        .build();
    let section = Section::of::<GptBaseModelConfig>("test.root").add(
        "decoder",
        Decl::list_dispatch(
            "decoder",
            "layout",
            "layers",
            vec![
                LayoutEntry {
                    layout_name: "t",
                    mixer_type: "attention",
                    section: block(attention_section()),
                },
                LayoutEntry {
                    layout_name: "g",
                    mixer_type: "gdn",
                    section: block(gdn),
                },
            ],
        ),
    );
    let fl = full::<GptBaseModelConfig>(
        r#"{"decoder": {"type": "pattern", "num_blocks": 3, "pattern": ["x", "y"],
            "blocks": {"x": {"mixer": {"heads": 4, "head_groups": 2}}, "y": {"mixer": {"type": "gdn", "value_heads": 8, "key_heads": 4}}}}}"#,
    );
    let hf = export(&section, &fl).unwrap();
    // A flat Nested section with an HF type name writes its discriminator too (Fast-LLM semantics).
    assert_eq!(
        hf,
        map(r#"{"layout": ["t", "g"], "layers": 3, "heads": 4, "gdn_heads": 8, "type": "attn"}"#)
    );
    let back = import(&section, &hf).unwrap();
    let decoder = back["decoder"].as_map().unwrap();
    assert_eq!(decoder["type"], Value::Str("pattern".into()));
    assert_eq!(
        decoder["pattern"],
        Value::List(vec![Value::Str("t".into()), Value::Str("g".into())])
    );
    let fixed = import(&section, &map(r#"{"layout": ["g"], "layers": 2, "gdn_heads": 8}"#)).unwrap();
    assert_eq!(fixed["decoder"].as_map().unwrap()["type"], Value::Str("fixed".into()));
    let problems = import(&section, &map(r#"{"layout": ["t", "m2"], "layers": 2, "heads": 4}"#)).unwrap_err();
    assert_eq!(problems[0].hf.as_deref(), Some("layout.1"));
}

fn norm_under_a_path() -> Arc<Section> {
    Section::of::<DecoderBlockConfig>("test.block")
        .add(
            "normalization",
            Decl::nested_under("normalization", norm().build(), "norm"),
        )
        .build()
}

fn gdn_layout() -> Arc<Section> {
    let gdn = Section::of::<fastllm_core::config::GatedDeltaNetConfig>("test.gdn")
        .add("value_heads", Decl::rename("value_heads", "gdn_heads"))
        .build();
    let entry = LayoutEntry {
        layout_name: "g",
        mixer_type: "gdn",
        section: Section::of::<DecoderBlockConfig>("test.block")
            .add("mixer", Decl::nested("mixer", gdn))
            .build(),
    };
    Section::of::<GptBaseModelConfig>("test.root")
        .add(
            "decoder",
            Decl::list_dispatch("decoder", "layout", "layers", vec![entry]),
        )
        .build()
}

/// What an HF value must be is said the same way by every primitive that reads one.
#[rstest]
#[case::rename_absent(|| norm().build(), "{}", "eps", "missing (required by test)")]
#[case::sub_dict_absent(norm_under_a_path, "{}", "norm", "missing (required by test)")]
#[case::sub_dict_not_a_dict(norm_under_a_path, r#"{"norm": 3}"#, "norm", "expected a dict, found 3")]
#[case::typed_dict_absent(stochastic_section, r#"{"main": "a"}"#, "mixers", "missing (required by test)")]
#[case::typed_dict_not_a_dict(
    stochastic_section,
    r#"{"mixers": 3, "main": "a"}"#,
    "mixers",
    "expected a dict, found 3"
)]
#[case::layout_absent(gdn_layout, r#"{"layers": 2}"#, "layout", "missing (required by test)")]
#[case::layout_not_a_list(
    gdn_layout,
    r#"{"layout": 3, "layers": 2}"#,
    "layout",
    "expected a non-empty list, found 3"
)]
#[case::layout_empty(
    gdn_layout,
    r#"{"layout": [], "layers": 2}"#,
    "layout",
    "expected a non-empty list, found []"
)]
#[case::count_absent(
    gdn_layout,
    r#"{"layout": ["g"], "gdn_heads": 8}"#,
    "layers",
    "missing (required by test)"
)]
fn an_absent_or_mistyped_hf_value_is_named_with_what_the_format_needs(
    #[case] section: fn() -> Arc<Section>,
    #[case] hf: &str,
    #[case] key: &str,
    #[case] message: &str,
) {
    let problems = import(&section(), &map(hf)).unwrap_err();
    let found: Vec<(Option<&str>, &str)> = (problems.iter())
        .map(|problem| (problem.hf.as_deref(), problem.message.as_str()))
        .collect();
    assert_eq!(found, [(Some(key), message)]);
}

#[test]
fn two_writers_of_one_key_must_agree() {
    let section = Section::of::<DecoderBlockConfig>("test.block")
        .add("normalization", Decl::nested("normalization", norm().build()))
        .add("pre_mlp", Decl::nested("pre_mlp_normalization", norm().build()));
    let same = full::<DecoderBlockConfig>(
        r#"{"normalization": {"type": "rms_norm", "epsilon": 1e-6}, "pre_mlp_normalization": {"type": "rms_norm", "epsilon": 1e-6}}"#,
    );
    assert_eq!(export(&section, &same).unwrap(), map(r#"{"eps": 1e-6}"#));
    let different = full::<DecoderBlockConfig>(
        r#"{"normalization": {"type": "rms_norm", "epsilon": 1e-6}, "pre_mlp_normalization": {"type": "rms_norm", "epsilon": 1e-5}}"#,
    );
    let problems = export(&section, &different).unwrap_err();
    let message = problems[0].to_string();
    assert!(
        message.contains("normalization.epsilon") && message.contains("pre_mlp_normalization.epsilon"),
        "{message}"
    );
}

#[test]
fn children_replace_entries_in_place() {
    let child = norm()
        .named("child.norm")
        .replace("epsilon", Decl::rename("epsilon", "layer_norm_eps"));
    let names: Vec<&str> = child.decls().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["epsilon", "weight", "zero_centered"]);
    let hf = export(&child, &full::<RmsNormalizationConfig>("{}")).unwrap();
    assert_eq!(hf, map(r#"{"layer_norm_eps": 1e-5}"#));
    assert_eq!(
        norm().decl("epsilon").map(Decl::kind),
        Some("Rename"),
        "the parent is untouched"
    );
}

// ----- coverage -----

#[test]
fn architecture_coverage_fails_on_a_missing_declaration() {
    assert!(architecture_gaps(&norm()).is_empty());
    let gaps = architecture_gaps(&norm().remove("zero_centered"));
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0].contains(r#"["zero_centered"]"#), "{gaps:?}");
}

#[test]
fn architecture_coverage_hints_at_non_recursive_claims() {
    let section = Section::of::<DecoderBlockConfig>("test.block")
        .add("mixer", Decl::rename("mixer", "mixer"))
        .add(
            "rest",
            Decl::ignored(&[
                "mlp",
                "normalization",
                "pre_mixer_normalization",
                "pre_mlp_normalization",
                "post_mixer_normalization",
                "post_mlp_normalization",
                "output_scale",
            ]),
        );
    let gaps = architecture_gaps(&section);
    assert!(
        gaps[0].contains("mixer.heads") && gaps[0].contains("claim the parent path non-recursively"),
        "{gaps:?}"
    );
}

#[rstest]
#[case(Value::Float(1e-5), true)]
#[case(Value::Float(1e-6), false)]
fn optional_sentinels_must_be_the_default(#[case] sentinel: Value, #[case] ok: bool) {
    let section = norm().replace("epsilon", Decl::optional("epsilon", "eps", sentinel));
    assert_eq!(
        sentinel_errors(&section).is_empty(),
        ok,
        "{:?}",
        sentinel_errors(&section)
    );
}

#[test]
fn hf_coverage_names_unclaimed_keys_at_any_depth() {
    let section = norm().add(
        "extra",
        Decl::custom(
            Claims::exact(&[], &["rope", "rope.factor"]),
            |_, _| Ok(vec![]),
            |_, _| Ok(vec![]),
        ),
    );
    let claims = hf_claims(&section);
    let allow: BTreeSet<&str> = ["model_type"].into_iter().collect();
    let input =
        map(r#"{"eps": 1, "rope": {"factor": 2, "finetuned": true, "model_type": "x"}, "typo": 3, "model_type": "y"}"#);
    let keys: Vec<String> = check_hf_coverage(&input, &claims, &allow)
        .into_iter()
        .filter_map(|p| p.hf)
        .collect();
    assert_eq!(keys, ["rope.finetuned", "typo"]);
    // A claimed key holding a scalar, or a whole-dict claim without sub-claims, is fine.
    assert!(check_hf_coverage(&map(r#"{"rope": null}"#), &claims, &allow).is_empty());
    // A sub-dict only claimed below: `null` holds nothing to drop, a scalar is unknown.
    let below = norm().add(
        "sub",
        Decl::custom(Claims::exact(&[], &["sub.a"]), |_, _| Ok(vec![]), |_, _| Ok(vec![])),
    );
    let claims = hf_claims(&below);
    assert!(check_hf_coverage(&map(r#"{"sub": null}"#), &claims, &allow).is_empty());
    let keys: Vec<String> = check_hf_coverage(&map(r#"{"sub": 3}"#), &claims, &allow)
        .into_iter()
        .filter_map(|p| p.hf)
        .collect();
    assert_eq!(keys, ["sub"]);
}

#[test]
fn unconverted_parts_are_claimed_whole_and_explained() {
    const TOWER: fastllm_core::Unconverted = fastllm_core::Unconverted {
        part: "vision tower",
        keys: &["vision_config", "image_token_id"],
        tensor_prefixes: &["vision_tower."],
    };
    let section = norm().unconverted(TOWER);
    let claims = hf_claims(&section);
    let allow = BTreeSet::new();
    // The part's keys, whatever they hold, are known; their contents are the part's.
    let input = map(r#"{"eps": 1, "vision_config": {"hidden_size": 8, "depth": 2}, "image_token_id": 3}"#);
    assert!(check_hf_coverage(&input, &claims, &allow).is_empty());
    let keys: Vec<String> = check_hf_coverage(&map(r#"{"video_token_id": 4}"#), &claims, &allow)
        .into_iter()
        .filter_map(|p| p.hf)
        .collect();
    assert_eq!(keys, ["video_token_id"]);
    let rows = fastllm_core::explain::rows(&section);
    let row = rows.last().unwrap();
    assert_eq!(
        (row.primitive, row.hf.as_str()),
        ("Unconverted", "vision_config, image_token_id")
    );
    assert!(
        row.note.contains("vision tower")
            && row.note.contains("vision_tower.*")
            && row
                .note
                .contains(&fastllm_core::hint::spell(fastllm_core::hint::Hint::TextOnly)),
        "{row:?}"
    );
}

/// A wrapper's sub-config imports with itself as the root (a `Default` fallback reads it, not
/// the wrapper's key of the same name), and its problems are named under its key.
#[rstest]
#[case::present(
    r#"{"text_config": {"eps": 1e-6}, "eps": 0.5}"#,
    Ok(r#"{"type": "rms_norm", "epsilon": 1e-6}"#)
)]
#[case::fallback_from_the_sub_config(
    r#"{"text_config": {"rms_norm_eps": 1e-5}, "rms_norm_eps": 0.5}"#,
    Ok(r#"{"type": "rms_norm", "epsilon": 1e-5}"#)
)]
#[case::absent(r#"{"rms_norm_eps": 0.5}"#, Err("text_config.eps"))]
#[case::not_a_dict(r#"{"text_config": 3}"#, Err("text_config.eps"))]
fn a_sub_config_imports_as_its_own_root(#[case] hf: &str, #[case] expected: Result<&str, &str>) {
    use fastllm_core::ImportContext;
    use fastllm_core::multimodal::{import_sub_config, sub_config};
    let section = Section::of::<RmsNormalizationConfig>("test.norm").add(
        "epsilon",
        Decl::default("epsilon", "eps", |root| {
            root.get("rms_norm_eps")
                .cloned()
                .ok_or_else(|| "no fallback".to_string())
        }),
    );
    let hf = map(hf);
    let sub = sub_config(&hf, "text_config");
    let context = ImportContext {
        root: &hf,
        format: "test",
        hf_path: "",
    };
    let imported = import_sub_config(&section, "text_config", &sub, &context);
    match expected {
        Ok(json) => assert_eq!(imported.unwrap(), map(json)),
        Err(key) => {
            let problems = imported.unwrap_err();
            assert_eq!(problems[0].hf.as_deref(), Some(key), "{problems:?}");
        }
    }
}

fn weight_names(section: &Section) -> Vec<&'static str> {
    section.weights().iter().map(|(name, _)| *name).collect()
}

/// `weight_before` inserts in place and keeps the duplicate check `weight` has; `replace_weight`
/// keeps the position of what it replaces (a child table's weights are its parent's with entries
/// replaced); `on_class` keeps the table.
#[test]
fn weight_builders_keep_order_and_names_unique() {
    use fastllm_core::weights::norm as norm_weight;
    let size = |_: &fastllm_core::weights::WeightContext| 4;
    let section = norm()
        .weight("first", norm_weight(size))
        .weight("last", norm_weight(size))
        .weight_before("last", "middle", norm_weight(size));
    assert_eq!(weight_names(&section), ["first", "middle", "last"]);

    let missing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        section.clone().replace_weight("absent", norm_weight(size))
    }));
    assert!(missing.is_err(), "replacing a weight the table lacks is refused");

    let moved = section.clone().on_class::<GptBaseModelConfig>();
    assert_eq!(moved.class().name, GptBaseModelConfig::CLASS_NAME);
    assert_eq!(weight_names(&moved), weight_names(&section));

    let duplicate = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        section.clone().weight_before("last", "first", norm_weight(size))
    }));
    assert!(duplicate.is_err(), "a duplicate weight name is refused");
    let no_anchor = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        section.clone().weight_before("absent", "new", norm_weight(size))
    }));
    assert!(no_anchor.is_err(), "a missing anchor is refused");
}

/// `replace_weight` swaps a declaration in place (a child table is its parent's with entries
/// replaced); `weights_under` mounts the table's own weights under an HF prefix.
#[test]
fn replaced_and_mounted_weights_plan_in_place() {
    use fastllm_core::weights::{WeightContext, vector};
    let four = |_: &WeightContext| 4;
    let section = Section::of::<GptBaseModelConfig>("test.root")
        .weight("a", vector("a", "hf_a", four))
        .weight("b", vector("b", "hf_b", four));
    let config = fastllm_core::config::BaseModelConfig::Gpt(GptBaseModelConfig::default());
    let planned = |section: &Section| -> Vec<(String, Vec<String>, Vec<usize>)> {
        let entries = fastllm_core::weights::plan(section, &config).unwrap();
        entries
            .into_iter()
            .map(|e| (e.fast_llm, e.hf, e.fast_llm_shape))
            .collect()
    };
    let entry = |name: &str, hf: &str, size: usize| (name.to_string(), vec![hf.to_string()], vec![size]);

    let replaced = section.clone().replace_weight("a", vector("a", "hf_a", |_| 8));
    assert_eq!(planned(&replaced), [entry("a", "hf_a", 8), entry("b", "hf_b", 4)]);

    let mounted = section.weights_under("text_model", "model");
    assert_eq!(weight_names(&mounted), ["text_model"]);
    assert_eq!(
        planned(&mounted),
        [entry("a", "model.hf_a", 4), entry("b", "model.hf_b", 4)]
    );
}

/// The uniform decoder: identical pattern blocks export as one description and
/// `num_hidden_layers`; differing ones are refused naming the second block; import is fixed.
#[rstest]
#[case::fixed(
    r#"{"type": "fixed", "num_blocks": 3, "block": {"mixer": {"heads": 4}}}"#,
    Ok(r#"{"num_attention_heads": 4, "num_hidden_layers": 3}"#)
)]
#[case::identical_pattern(
    r#"{"type": "pattern", "num_blocks": 2, "pattern": ["a", "b"],
        "blocks": {"a": {"mixer": {"heads": 4}}, "b": {"mixer": {"heads": 4}}}}"#,
    Ok(r#"{"num_attention_heads": 4, "num_hidden_layers": 2}"#)
)]
#[case::differing_pattern(
    r#"{"type": "pattern", "num_blocks": 2, "pattern": ["a", "b"],
        "blocks": {"a": {"mixer": {"heads": 4}}, "b": {"mixer": {"heads": 8}}}}"#,
    Err("decoder.blocks.b")
)]
fn the_uniform_decoder_repeats_one_block(#[case] decoder: &str, #[case] expected: Result<&str, &str>) {
    let block = Section::of::<DecoderBlockConfig>("test.block")
        .add("heads", Decl::rename("mixer.heads", "num_attention_heads"))
        .build();
    let root = Section::of::<GptBaseModelConfig>("test.root").add("decoder", fastllm_core::decoder::uniform(block));
    let fl = full::<GptBaseModelConfig>(&format!(r#"{{"decoder": {decoder}}}"#));
    match expected {
        Ok(json) => {
            let hf = export(&root, &fl).unwrap();
            assert_eq!(hf, map(json));
            let back = import(&root, &hf).unwrap();
            assert_eq!(back["decoder"].as_map().unwrap()["type"], Value::Str("fixed".into()));
            assert_eq!(
                back["decoder"].as_map().unwrap()["num_blocks"],
                map(json)["num_hidden_layers"]
            );
        }
        Err(path) => {
            let problems = export(&root, &fl).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].fast_llm.as_deref(), Some(path));
            assert!(
                problems[0].message.contains("pattern blocks must be identical"),
                "{}",
                problems[0].message
            );
        }
    }
}

/// The text model's fields at a multimodal root are exactly the GPT root's architecture fields.
#[test]
fn text_fields_are_the_gpt_architecture_fields() {
    use fastllm_core::config::FieldHint;
    let architecture: BTreeSet<&str> = GptBaseModelConfig::FIELDS
        .iter()
        .filter(|field| field.hint == FieldHint::Architecture)
        .map(|field| field.name)
        .collect();
    let declared: BTreeSet<&str> = fastllm_core::multimodal::TEXT_FIELDS.iter().copied().collect();
    assert_eq!(declared, architecture);
}
