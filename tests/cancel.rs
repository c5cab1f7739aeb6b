//! A conversion stopped by its progress callback (what the Python package does on Ctrl-C)
//! returns `Interrupted` and leaves nothing; the process's other conversions go on.

use std::ops::ControlFlow;
use std::path::Path;

use fastllm_convert::checkpoint::CheckpointError;
use fastllm_convert::checkpoint::convert::{self, Conversion, ConversionError, Options, Side};

fn root(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("fastllm-cancel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn input() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/llama-tiny"))
}

#[test]
fn a_stopped_conversion_leaves_nothing_and_the_next_one_commits() {
    let root = root("stop");
    let from = convert::detect(input()).unwrap();
    for stop_at in [0, 1, 3] {
        let mut calls = 0;
        let result = convert::convert_cancellable(
            &Conversion {
                input: input(),
                from,
                output: &root.join("new/parents/out"),
                to: Side::FastLlm,
            },
            &Options::default(),
            &mut |_, _| {
                calls += 1;
                if calls > stop_at {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert!(
            matches!(result, Err(ConversionError::Checkpoint(CheckpointError::Interrupted))),
            "stop after {stop_at} calls: {:?}",
            result.map(|s| s.files)
        );
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(left.is_empty(), "stop after {stop_at} calls left {left:?}");
    }
    // Not the whole process's outputs are abandoned: the next conversion commits.
    let mut last = (0, 0);
    convert::convert_cancellable(
        &Conversion {
            input: input(),
            from,
            output: &root.join("out"),
            to: Side::FastLlm,
        },
        &Options::default(),
        &mut |done, total| {
            last = (done, total);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(last.1 > 0 && last.0 == last.1, "{last:?}");
    assert!(root.join("out/metadata.yaml").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_stopped_conversion_under_force_keeps_the_old_output() {
    let root = root("force");
    let from = convert::detect(input()).unwrap();
    let output = root.join("out");
    std::fs::create_dir(&output).unwrap();
    std::fs::write(output.join("old"), "old").unwrap();
    let options = Options {
        force: true,
        ..Options::default()
    };
    let result = convert::convert_cancellable(
        &Conversion {
            input: input(),
            from,
            output: &output,
            to: Side::FastLlm,
        },
        &options,
        &mut |_, _| ControlFlow::Break(()),
    );
    assert!(matches!(
        result,
        Err(ConversionError::Checkpoint(CheckpointError::Interrupted))
    ));
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out"]);
    assert_eq!(std::fs::read_to_string(output.join("old")).unwrap(), "old");
    std::fs::remove_dir_all(&root).unwrap();
}
