//! The filesystem policy, as properties over generated worlds (issue 17): random trees of
//! symlinks, hard links, FIFOs and directories around an input checkpoint (plain, a Hugging Face
//! cache snapshot, named like a staging directory, inside or beside the output), an output that
//! is fresh, an old one (holding links into the input), the input's blobs, its parent or the
//! input itself, stale staging names beside it, with and without `--force` and `--config-only`.
//! Whatever happens, after every conversion:
//!
//! 1. every entry that existed before, outside the output path and the stale staging directories
//!    the world put there, is unchanged (the input, its blobs, the files it links to, secrets);
//! 2. nothing new exists outside the output path (no staging or set-aside directory, and no
//!    parent directory unless the output was written);
//! 3. a conversion that failed left the output path as it was;
//! 4. an output never holds a file from outside the input (or its cache blobs), nor a copy more
//!    widely readable than its source;
//! 5. an existing output without `--force` is refused.
//!
//! `FASTLLM_POLICY_CASES` sets the number of worlds (default 10,000), `FASTLLM_POLICY_SEED` the
//! first seed (default: from the clock; printed).
#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use fastllm_convert::checkpoint::convert::{self, Options, Side};
use fastllm_convert::checkpoint::synthetic::{SyntheticStorage, write_synthetic_hf};
use fastllm_convert::config::{ModelKind, Value, load_base_model};
use support::random::{Random, cases_and_seed};
use support::{Entry, scratch, snapshot};

/// A tiny Llama checkpoint (a few KB) every world copies its input from.
fn template(dir: &Path) {
    let config = r#"{"hidden_size": 16, "embeddings": {"vocab_size": 64},
        "head": {"normalization": {"type": "rms_norm"}},
        "decoder": {"num_blocks": 1, "block": {
          "mixer": {"heads": 2, "head_groups": 2, "head_size": 8, "add_linear_biases": false,
                    "rotary": {"type": "default", "theta": 10000}},
          "mlp": {"intermediate_size": 32, "gated": true, "add_linear_biases": false},
          "normalization": {"type": "rms_norm"}}}}"#;
    let config = load_base_model(ModelKind::Gpt, &Value::from_json_str(config).unwrap()).unwrap();
    let llama = fastllm_convert::core::find("llama").unwrap();
    write_synthetic_hf(
        llama,
        &config,
        dir,
        &SyntheticStorage {
            dtype: "BF16",
            max_shard_bytes: 1 << 30,
        },
    )
    .unwrap();
}

const SECRET: &[u8] = b"SECRET: the user's token";
const STAGING_NAME: &str = ".out.partial-4242-00112233aabbccdd";
const ASIDE_NAME: &str = ".out.replaced-4242-00112233aabbccdd";

/// How a companion file of the input is made, and whether the policy may copy it.
#[derive(Clone, Copy, Debug)]
enum Companion {
    Regular,
    /// Regular, readable by its owner only.
    Private,
    LinkInside,
    HardLinkFromOutside,
    LinkToBlob,
    LinkToSecret,
    LinkToProc,
    LinkToDevice,
    LinkOutside,
    Dangling,
    Loop,
    Fifo,
    Directory,
}

impl Companion {
    fn copyable(self) -> bool {
        matches!(
            self,
            Companion::Regular
                | Companion::Private
                | Companion::LinkInside
                | Companion::HardLinkFromOutside
                | Companion::LinkToBlob
        )
    }
}

const COMPANIONS: &[Companion] = &[
    Companion::Regular,
    Companion::Private,
    Companion::LinkInside,
    Companion::HardLinkFromOutside,
    Companion::LinkToBlob,
    Companion::LinkToSecret,
    Companion::LinkToProc,
    Companion::LinkToDevice,
    Companion::LinkOutside,
    Companion::Dangling,
    Companion::Loop,
    Companion::Fifo,
    Companion::Directory,
];

/// Where the input sits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Plain,
    CacheSnapshot,
    NamedLikeStaging,
    NamedLikeAside,
    InsideOutput,
    BesideOutputInParent,
}

/// Where the output goes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Fresh,
    /// An old output holding its own files.
    Old,
    /// An old output holding a hard link to an input file.
    OldHoldingHardLink,
    /// An old output holding a symlink to an input file (removing a link spares its target).
    OldHoldingSymlink,
    /// The cache's blobs directory the input's files link to.
    Blobs,
    TheInput,
    InsideTheInput,
    TheInputsParent,
    /// A fresh output under directories that do not exist yet.
    UnderNewParents,
}

struct World {
    root: PathBuf,
    input: PathBuf,
    output: PathBuf,
    options: Options,
    to: &'static str,
    companions: Vec<(&'static str, Companion)>,
    /// Stale directories the world put beside the output that a sweep may remove.
    sweepable: Vec<PathBuf>,
    describe: String,
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
}

fn build(root: &Path, template: &Path, random: &mut Random) -> World {
    std::fs::create_dir_all(root.join("ext")).unwrap();
    std::fs::write(root.join("secret"), SECRET).unwrap();
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(root.join("ext/shared"), b"shared companion").unwrap();
    let mut place = *random.pick(&[
        Place::Plain,
        Place::CacheSnapshot,
        Place::NamedLikeStaging,
        Place::NamedLikeAside,
        Place::InsideOutput,
        Place::BesideOutputInParent,
    ]);
    let mut target = *random.pick(&[
        Target::Fresh,
        Target::Old,
        Target::OldHoldingHardLink,
        Target::OldHoldingSymlink,
        Target::Blobs,
        Target::TheInput,
        Target::InsideTheInput,
        Target::TheInputsParent,
        Target::UnderNewParents,
    ]);
    if target == Target::Blobs {
        place = Place::CacheSnapshot;
    }
    if place == Place::InsideOutput && !matches!(target, Target::Fresh | Target::Old) {
        target = Target::Old;
    }
    let cache = root.join("models--org--name");
    let (input, output) = match place {
        Place::Plain => (root.join("in"), root.join("out")),
        Place::CacheSnapshot => (cache.join("snapshots/rev"), root.join("out")),
        Place::NamedLikeStaging => (root.join(STAGING_NAME), root.join("out")),
        Place::NamedLikeAside => (root.join(ASIDE_NAME), root.join("out")),
        Place::InsideOutput => (root.join("out/inner"), root.join("out")),
        Place::BesideOutputInParent => (root.join("a/in"), root.join("a/out")),
    };
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let blobs = cache.join("blobs");
    if place == Place::CacheSnapshot {
        std::fs::create_dir_all(&blobs).unwrap();
    }
    // The weights and config: copies, links into the blobs, into a sub-directory, or hard links.
    for name in ["config.json", "model.safetensors"] {
        let bytes = std::fs::read(template.join(name)).unwrap();
        match (place == Place::CacheSnapshot, random.below(3)) {
            (true, _) => {
                std::fs::write(blobs.join(format!("blob-{name}")), &bytes).unwrap();
                symlink(format!("../../blobs/blob-{name}"), input.join(name)).unwrap();
            }
            (false, 0) => std::fs::write(input.join(name), &bytes).unwrap(),
            (false, 1) => {
                std::fs::write(input.join("sub").join(name), &bytes).unwrap();
                symlink(Path::new("sub").join(name), input.join(name)).unwrap();
            }
            (false, _) => {
                std::fs::write(root.join("ext").join(name), &bytes).unwrap();
                std::fs::hard_link(root.join("ext").join(name), input.join(name)).unwrap();
            }
        }
    }
    let mut companions = Vec::new();
    for name in ["LICENSE", "tokenizer.json", "README.md", "chat_template.jinja"] {
        let mut kind = *random.pick(COMPANIONS);
        if matches!(kind, Companion::LinkToBlob) && place != Place::CacheSnapshot {
            kind = Companion::Regular;
        }
        let path = input.join(name);
        let text = format!("companion {name}");
        match kind {
            Companion::Regular => std::fs::write(&path, &text).unwrap(),
            Companion::Private => {
                std::fs::write(&path, &text).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            Companion::LinkInside => {
                std::fs::write(input.join("sub").join(name), &text).unwrap();
                symlink(Path::new("sub").join(name), &path).unwrap();
            }
            Companion::HardLinkFromOutside => std::fs::hard_link(root.join("ext/shared"), &path).unwrap(),
            Companion::LinkToBlob => {
                std::fs::write(blobs.join(format!("blob-{name}")), &text).unwrap();
                symlink(format!("../../blobs/blob-{name}"), &path).unwrap();
            }
            Companion::LinkToSecret => symlink(root.join("secret"), &path).unwrap(),
            Companion::LinkToProc => symlink("/proc/self/environ", &path).unwrap(),
            Companion::LinkToDevice => symlink("/dev/zero", &path).unwrap(),
            Companion::LinkOutside => symlink(root.join("ext/shared"), &path).unwrap(),
            Companion::Dangling => symlink("nowhere", &path).unwrap(),
            Companion::Loop => symlink(name, &path).unwrap(),
            Companion::Fifo => mkfifo(&path),
            Companion::Directory => std::fs::create_dir(&path).unwrap(),
        }
        companions.push((name, kind));
    }
    let output = match target {
        Target::Blobs => blobs.clone(),
        Target::TheInput => input.clone(),
        Target::InsideTheInput => input.join("sub/out"),
        Target::TheInputsParent => input.parent().unwrap().to_path_buf(),
        Target::UnderNewParents => output.parent().unwrap().join("new/parents/out"),
        _ => output,
    };
    if matches!(
        target,
        Target::Old | Target::OldHoldingHardLink | Target::OldHoldingSymlink
    ) {
        std::fs::create_dir_all(output.join("old-sub")).unwrap();
        std::fs::write(output.join("old-sub/old"), "old output").unwrap();
        let weights = std::fs::canonicalize(input.join("model.safetensors")).unwrap();
        if target == Target::OldHoldingHardLink {
            std::fs::hard_link(&weights, output.join("linked-weights")).unwrap();
        }
        if target == Target::OldHoldingSymlink {
            symlink(&weights, output.join("weights-link")).unwrap();
        }
    }
    // Stale directories with generated names beside the output: one a killed run's (may be
    // swept), one holding a hard link to an input file (must stay).
    let parent = output.parent().unwrap().to_path_buf();
    let mut sweepable = Vec::new();
    if parent.is_dir() && random.chance(50) {
        let name = output.file_name().unwrap().to_string_lossy().into_owned();
        let dead = parent.join(format!(".{name}.partial-999999-0123456789abcdef"));
        if dead.symlink_metadata().is_err() {
            std::fs::create_dir_all(dead.join("x")).unwrap();
            std::fs::write(dead.join("x/junk"), "junk").unwrap();
            sweepable.push(dead);
        }
        let holder = parent.join(format!(".{name}.replaced-999999-fedcba9876543210"));
        if holder.symlink_metadata().is_err() && random.chance(50) {
            std::fs::create_dir_all(&holder).unwrap();
            let config = std::fs::canonicalize(input.join("config.json")).unwrap();
            std::fs::hard_link(config, holder.join("config.json")).unwrap();
        }
    }
    let options = Options {
        force: random.chance(70),
        config_only: random.chance(30),
        ..Options::default()
    };
    let to = *random.pick(&["fast_llm", "llama"]);
    let describe = format!(
        "input {place:?} at {}, output {target:?} at {}, {companions:?}, force {}, config_only {}, to {to}",
        input.display(),
        output.display(),
        options.force,
        options.config_only
    );
    World {
        root: root.to_path_buf(),
        input,
        output,
        options,
        to,
        companions,
        sweepable,
        describe,
    }
}

fn run(world: &World) -> Result<convert::Summary, String> {
    let from = convert::detect(&world.input).map_err(|e| e.to_string())?;
    let to = match world.to {
        "fast_llm" => Side::FastLlm,
        name => Side::Hf(fastllm_convert::core::find(name).unwrap()),
    };
    convert::convert(
        &convert::Conversion {
            input: &world.input,
            from,
            output: &world.output,
            to,
        },
        &world.options,
    )
    .map_err(|e| e.to_string())
}

/// Checks the invariants of the module doc; returns the first one broken.
fn check(
    world: &World,
    before: &BTreeMap<PathBuf, Entry>,
    result: &Result<convert::Summary, String>,
) -> Result<(), String> {
    let after = snapshot(&world.root);
    let output = world.output.strip_prefix(&world.root).unwrap();
    let exempt = |path: &Path| {
        path.starts_with(output)
            || world
                .sweepable
                .iter()
                .any(|s| path.starts_with(s.strip_prefix(&world.root).unwrap()))
    };
    let input_inside_output = world.input.starts_with(&world.output);
    for (path, entry) in before {
        // An input inside the output is still the input: never exempt.
        let in_input = world.input.strip_prefix(&world.root).is_ok_and(|i| path.starts_with(i));
        if exempt(path) && !(in_input && input_inside_output) {
            continue;
        }
        if after.get(path) != Some(entry) {
            return Err(format!("1: `{}` changed or vanished", path.display()));
        }
    }
    for path in after.keys() {
        // A converted output's new parent directories stay, of course.
        let parent_of_output = result.is_ok() && output.starts_with(path);
        if !before.contains_key(path) && !path.starts_with(output) && !parent_of_output {
            return Err(format!("2: `{}` appeared outside the output", path.display()));
        }
    }
    let old: BTreeMap<_, _> = before.iter().filter(|(p, _)| p.starts_with(output)).collect();
    let new: BTreeMap<_, _> = after.iter().filter(|(p, _)| p.starts_with(output)).collect();
    match result {
        Err(_) if old != new => return Err("3: a failed conversion changed the output path".into()),
        Err(_) => {}
        Ok(_) if !old.is_empty() && !world.options.force => {
            return Err("5: an existing output was replaced without --force".into());
        }
        Ok(_) => {
            for (path, entry) in &new {
                if let Entry::File(bytes) = entry
                    && bytes.windows(SECRET.len()).any(|w| w == SECRET)
                {
                    return Err(format!("4: `{}` holds the secret", path.display()));
                }
            }
            for (name, kind) in &world.companions {
                let copy = world.output.join(name);
                match copy.symlink_metadata() {
                    Ok(_) if !kind.copyable() => return Err(format!("4: {name} ({kind:?}) was copied")),
                    Ok(metadata) => {
                        let source = std::fs::metadata(world.input.join(name)).unwrap();
                        let (mode, source) = (
                            metadata.permissions().mode() & 0o777,
                            source.permissions().mode() & 0o777,
                        );
                        if mode & !source != 0 {
                            return Err(format!(
                                "4: {name} copied with mode {mode:o}, its source has {source:o}"
                            ));
                        }
                    }
                    Err(_) if kind.copyable() => return Err(format!("{name} ({kind:?}) was not copied")),
                    Err(_) => {}
                }
            }
        }
    }
    Ok(())
}

#[test]
fn no_conversion_touches_its_input_or_leaks_a_file() {
    let (cases, seed) = cases_and_seed("FASTLLM_POLICY_CASES", 10_000, "FASTLLM_POLICY_SEED");
    eprintln!("{cases} worlds from seed {seed} (FASTLLM_POLICY_SEED={seed} reproduces them)");
    let base = scratch("fs-policy", "worlds");
    let template_dir = base.join("template");
    template(&template_dir);
    let workers = 2u64;
    let outcomes: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let template_dir = &template_dir;
                let base = &base;
                scope.spawn(move || {
                    let (mut converted, mut refused) = (0, 0);
                    for case in (worker..cases).step_by(workers as usize) {
                        let root = base.join(format!("w{worker}"));
                        let _ = std::fs::remove_dir_all(&root);
                        std::fs::create_dir_all(&root).unwrap();
                        let mut random = Random(seed.wrapping_add(case).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                        let world = build(&root, template_dir, &mut random);
                        let before = snapshot(&root);
                        let result = run(&world);
                        if let Err(broken) = check(&world, &before, &result) {
                            panic!(
                                "case {case} (FASTLLM_POLICY_SEED={seed}): invariant {broken}\n{}\nresult: {:?}",
                                world.describe,
                                result.as_ref().map(|s| &s.files)
                            );
                        }
                        if result.is_ok() { converted += 1 } else { refused += 1 }
                    }
                    (converted, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (converted, refused) = outcomes.iter().fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    eprintln!("{converted} converted, {refused} refused");
    // Both outcomes are exercised, or the property proves little.
    assert!(
        converted > cases / 10 && refused > cases / 10,
        "{converted} converted, {refused} refused"
    );
}

/// `--force` over an old output that holds a bind mount is refused by name: of the input (it
/// is the input's directory), or of any other directory (a removal never crosses a mount point,
/// checked by the mount id, which tells a bind mount of the same filesystem apart). Runs in a
/// private mount namespace (`unshare -m`), so the mount dies with the command; skipped where
/// mounting is not permitted.
#[rstest::rstest]
#[case::of_the_input("in", "is the input's")]
#[case::of_another_directory("elsewhere", "is a mount point")]
fn force_never_removes_through_a_mount_point(#[case] mounted: &str, #[case] reason: &str) {
    let root = scratch("fs-policy", &format!("mount-{mounted}"));
    let input = root.join("in");
    template(&input);
    std::fs::create_dir_all(root.join("elsewhere")).unwrap();
    std::fs::write(root.join("elsewhere/precious"), "precious").unwrap();
    let old = root.join("out");
    std::fs::create_dir_all(old.join("mnt")).unwrap();
    let before = snapshot(&root);
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind \"$0\" \"$1\""])
        .arg(root.join(mounted))
        .arg(old.join("mnt"))
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: mounting is not permitted here");
        return;
    }
    let script = "mount --bind \"$0\" \"$1\" && exec \"$2\" convert --from llama --to fast_llm --force \"$3\" \"$4\"";
    let run = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(root.join(mounted))
        .arg(old.join("mnt"))
        .arg(env!("CARGO_BIN_EXE_fastllm-convert"))
        .arg(&input)
        .arg(&old)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(reason) && stderr.contains("out/mnt"), "{stderr}");
    assert!(snapshot(&root) == before, "something changed");
}

/// An old output that cannot be removed entirely (here an immutable file in it) is not left
/// hidden with exit 0: the run says the new output is in place and where the rest of the old one
/// is, and exits 2. Skipped where `chattr +i` is not available.
#[test]
fn an_old_output_that_cannot_be_removed_is_reported() {
    let root = scratch("fs-policy", "immutable");
    let input = root.join("in");
    template(&input);
    let old = root.join("out");
    std::fs::create_dir_all(old.join("sub")).unwrap();
    std::fs::write(old.join("sub/stuck"), "old").unwrap();
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(old.join("sub/stuck"))
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("skipped: chattr +i is not available here");
        return;
    }
    let output = support::cli(&[
        "convert",
        "--from",
        "llama",
        "--to",
        "fast_llm",
        "--force",
        input.to_str().unwrap(),
        old.to_str().unwrap(),
    ]);
    let leftover: Vec<String> = support::names(&root)
        .into_iter()
        .filter(|n| n.starts_with(".out."))
        .collect();
    // Release it before any assertion, so that the scratch directory can be removed.
    for name in &leftover {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(root.join(name).join("sub/stuck"))
            .status();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the new output is complete and in place") && leftover.len() == 1,
        "{stderr}\n{leftover:?}"
    );
    assert!(stderr.contains(&leftover[0]), "the leftover is named: {stderr}");
    assert!(old.join("metadata.yaml").is_file(), "the new output is in place");
}
