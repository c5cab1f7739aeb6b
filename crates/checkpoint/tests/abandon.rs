//! What a SIGINT / SIGTERM handler does, in a process of its own (it forbids every later commit).

use fastllm_checkpoint::CheckpointError;
use fastllm_checkpoint::policy::{Existing, OutputDir, Protected, abandon_live_outputs};

#[test]
fn abandoning_removes_live_outputs_and_their_parents_and_forbids_commits() {
    let root = std::env::temp_dir().join(format!("fastllm-abandon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let output = OutputDir::create(&root.join("p/q/out"), Existing::Refuse, &Protected::nothing()).unwrap();
    output.write_text("x", "y").unwrap();
    let abandoned = abandon_live_outputs();
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert!(abandoned[0].starts_with(&root), "{abandoned:?}");
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(output.commit(), Err(CheckpointError::Interrupted)));
    std::fs::remove_dir_all(&root).unwrap();
}
