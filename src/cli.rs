//! The `fastllm-convert` command line (clap), run by the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fastllm_checkpoint::convert;
use fastllm_checkpoint::distributed::DistributedCheckpoint;
use fastllm_checkpoint::source::RemoteInput;
use fastllm_config::{self as config, Form, Map, ModelKind, Value};
use fastllm_core::{self as core, HfLayout, explain};

use crate::api;

#[derive(Parser)]
#[command(
    name = "fastllm-convert",
    version,
    about = "Convert LLM checkpoints between HuggingFace and Fast-LLM formats"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with configs: Fast-LLM ones, and HF `config.json` files of any registered format.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List the registered formats with their HF model types and architectures.
    Formats,
    /// Print a format's mapping table (Fast-LLM path ↔ HF key ↔ primitive), from its declarations.
    Explain {
        /// A registered format name.
        format: String,
    },
    /// Convert a whole checkpoint (config and weights). F and G are registered formats or
    /// `fast_llm`; HF → HF goes through the Fast-LLM model. A Fast-LLM training checkpoint
    /// (`fast_llm_distributed`) converts to any of them.
    Convert {
        /// Input format (`auto`: `metadata.yaml` means fast_llm, or fast_llm_distributed when it
        /// says `format: distributed`; else config.json's model_type).
        #[arg(long)]
        from: String,
        /// Output format.
        #[arg(long)]
        to: String,
        /// Rope layout of the written config.json.
        #[arg(long, value_enum, default_value_t = LayoutArg::V4)]
        hf_layout: LayoutArg,
        /// Convert the config only.
        #[arg(long)]
        config_only: bool,
        /// Print the plan (every tensor with its shape and bytes); read no tensor data, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print a machine-readable JSON summary.
        #[arg(long)]
        json: bool,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
        /// Largest HF shard (bytes, or with a unit: 5GB, 500MB, 2GiB).
        #[arg(long, default_value = "5GB", value_parser = parse_size)]
        max_shard_size: u64,
        /// Drop the parts of a multimodal input the format does not convert (Gemma 4's vision and
        /// audio towers): convert the text model alone and list every dropped key and tensor.
        #[arg(long)]
        text_only: bool,
        /// Drop this key of the input's config.json (dotted for nested keys; repeatable): the way
        /// to accept losing a key the format does not know. A key the format converts or checks
        /// (or one holding such a key) is refused: dropping it would change the model. For a
        /// Fast-LLM input, a key of the HF metadata stored in its metadata.yaml. The summary lists
        /// it.
        #[arg(long = "drop-key", value_name = "KEY")]
        drop_keys: Vec<String>,
        /// The shard of a fast_llm_distributed input to convert (default `weights`): e.g.
        /// `exp_avgs` writes the optimizer's average gradients in place of the weights. The
        /// other shards are listed as not converted.
        #[arg(long, value_name = "NAME")]
        shard: Option<String>,
        /// Write every tensor in this dtype (bf16, f16 or f32; default: each tensor's own), rounded
        /// to nearest even as torch's `tensor.to(dtype)` does; config.json's `torch_dtype` /
        /// `dtype` says so. A tensor of another kind (ints, F8) is refused by name.
        #[arg(long, value_name = "DTYPE", value_parser = parse_dtype)]
        dtype: Option<fastllm_checkpoint::cast::Dtype>,
        /// With --dtype: write a finite value too large for the dtype as an infinity, listing each
        /// such tensor, instead of failing.
        #[arg(long)]
        allow_overflow: bool,
        /// With --to fast_llm_distributed: the parallel layout to write, as Fast-LLM names it:
        /// tp (tensor_parallel), pp (pipeline_parallel), dp (data-parallel size), zero (ZeRO
        /// stage 1-3), sdp (sequence_data_parallel), pipeline_first, layers_per_stage. A key left
        /// out takes Fast-LLM's default (1 for sizes).
        #[arg(long, value_name = "tp=N,pp=N,dp=N,zero=N,...", value_parser = parse_layout)]
        layout: Option<fastllm_checkpoint::distributed::LayoutSpec>,
        /// Carry the optimizer state (exp_avgs, exp_avgs_sq) of a training checkpoint (or of a
        /// fast_llm checkpoint saved with it) into a fast_llm or fast_llm_distributed output.
        /// Frozen parameters have none.
        #[arg(long)]
        optimizer_state: bool,
        /// Convert only the K-th of N disjoint sets of the output's tensor files (K from 0 to N-1,
        /// chosen deterministically, balanced by bytes), into `OUTPUT.part-K-of-N` beside the
        /// output; safe to retry. Then --finalize assembles the output. See docs/distributed-runs.md.
        #[arg(long, value_name = "K/N", value_parser = convert::Part::parse, conflicts_with_all = ["finalize", "config_only"])]
        part: Option<convert::Part>,
        /// Check that every part written by --part K/N is present and complete, and assemble the
        /// output: its files, then the index and config.
        #[arg(long, conflicts_with_all = ["config_only", "dry_run"])]
        finalize: bool,
        /// Object-store paths: requests in flight at once (ranged GETs, multipart parts).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        io_concurrency: u16,
        /// Object-store paths: the size of one ranged GET and one multipart part (at least 5MiB);
        /// with --io-concurrency, bounds the transfer buffers.
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        io_part_size: u64,
        /// Object-store paths: how often a failed request (5xx, throttling, dropped connection) is
        /// retried, with exponential backoff.
        #[arg(long, default_value_t = 10)]
        io_retries: usize,
        /// The input checkpoint directory, or an object-store URL (s3://bucket/prefix, gs://…,
        /// az://…, http(s)://…; credentials from the AWS_*, GOOGLE_*, AZURE_* variables).
        input: PathBuf,
        /// The output directory (must not exist unless --force), or an object-store URL (not
        /// http).
        output: PathBuf,
    },
    /// Describe a checkpoint: format, config summary, parameter count, dtypes, files; for a
    /// training checkpoint, its parallel layout, shards and step.
    Inspect {
        /// A checkpoint directory (HF, Fast-LLM or Fast-LLM distributed), or an object-store URL
        /// (`s3://`, `gs://`, `az://`, `http(s)://`): its headers read by ranged GETs, no tensor
        /// data downloaded.
        path: PathBuf,
    },
}

/// `bf16`, `f16` or `f32`.
fn parse_layout(text: &str) -> Result<fastllm_checkpoint::distributed::LayoutSpec, String> {
    text.parse()
        .map_err(|e: fastllm_checkpoint::distributed::SpecError| e.to_string())
}

fn parse_dtype(text: &str) -> Result<fastllm_checkpoint::cast::Dtype, String> {
    fastllm_checkpoint::cast::Dtype::parse(text).ok_or_else(|| format!("`{text}` is not bf16, f16 or f32"))
}

/// `5GB`, `500MB`, `2GiB`, or plain bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size"))?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (B, KB, MB, GB, TB, KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = number * scale;
    if bytes >= 1.0 {
        Ok(bytes as u64)
    } else {
        Err(format!("`{text}` is too small a shard size"))
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Read a Fast-LLM base-model config (JSON or YAML), validate it, and print it resolved as JSON.
    Normalize {
        /// Which dict form to print.
        #[arg(long, value_enum, default_value_t = FormArg::Architecture)]
        form: FormArg,
        /// Which base-model class to read.
        #[arg(long, value_enum, default_value_t = ModelArg::Gpt)]
        model: ModelArg,
        /// The config file (`.json`, `.yaml` or `.yml`).
        file: PathBuf,
    },
    /// Import an HF config.json: print the Fast-LLM base-model config (architecture form).
    Import {
        /// A registered format, or `auto` to choose it from `model_type`.
        #[arg(long)]
        format: String,
        /// Drop the keys of the parts the format does not convert (a multimodal config's vision
        /// and audio towers), naming them on stderr.
        #[arg(long)]
        text_only: bool,
        /// Drop this key of the config before importing it (dotted; repeatable): a key the format
        /// does not know; one it converts or checks is refused.
        #[arg(long = "drop-key", value_name = "KEY")]
        drop_keys: Vec<String>,
        /// The HF config.json.
        file: PathBuf,
    },
    /// Export a Fast-LLM base-model config (JSON or YAML) as the format's HF config.json.
    Export {
        /// A registered format.
        #[arg(long)]
        format: String,
        /// Rope layout: `v4` (rope_theta + rope_scaling, transformers 4.x) or `v5` (rope_parameters).
        #[arg(long, value_enum, default_value_t = LayoutArg::V4)]
        hf_layout: LayoutArg,
        /// Print the complete config.json `convert` writes (every key transformers'
        /// `save_pretrained` writes), not only the keys the format's declarations set.
        #[arg(long)]
        complete: bool,
        /// The Fast-LLM base-model config.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormArg {
    /// Only the fields set explicitly (what Fast-LLM writes to metadata.yaml).
    Explicit,
    /// Explicit fields plus every core and architecture field resolved.
    Architecture,
    /// Every field.
    Full,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    Gpt,
    Multimodal,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    V4,
    V5,
}

impl From<LayoutArg> for HfLayout {
    fn from(layout: LayoutArg) -> Self {
        match layout {
            LayoutArg::V4 => HfLayout::V4,
            LayoutArg::V5 => HfLayout::V5,
        }
    }
}

/// Parses the command line, runs it, prints the result; exit status 2 on any error.
pub fn main() -> ExitCode {
    ExitCode::from(run_args(std::env::args_os()))
}

/// [`main`] on `args` (the program name first), returning the exit status: what the binary
/// and `python -m fastllm_convert` run. It takes over SIGINT and SIGTERM for the rest of the
/// process (see [`clean_up_on_interrupt`]).
pub fn run_args<T: Into<std::ffi::OsString> + Clone>(args: impl IntoIterator<Item = T>) -> u8 {
    crate::api::use_flags();
    ignore_file_size_signal();
    clean_up_on_interrupt();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Usage errors exit 2, --help and --version 0, as clap's own exit would.
            let _ = error.print();
            return u8::try_from(error.exit_code()).unwrap_or(2);
        }
    };
    match run(cli) {
        Ok(stdout) => {
            // A closed pipe (e.g. `| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{}", config::printable_lines(&stdout));
            0
        }
        Err(message) => {
            note(&format!("error: {message}"));
            2
        }
    }
}

/// Under a file-size limit (`ulimit -f`) the kernel kills a process writing past it with SIGXFSZ
/// unless the signal is ignored. Ignored, the write fails with EFBIG instead, and the conversion
/// stops with an error naming the file and removes its partial output.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: SIG_IGN runs no handler code, and no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// SIGINT, SIGTERM and SIGHUP end the process through one thread that first removes every output
/// still being built (its staging directory and the parents created for it), says so, and exits
/// with 128 + the signal (130, 143, 129). The signals are blocked in every other thread (threads started
/// later inherit the mask), so none of them is interrupted half-way through a write.
fn clean_up_on_interrupt() {
    #[cfg(unix)]
    {
        // SAFETY: plain libc calls on a local, initialised signal set; no other thread exists yet.
        let signals = unsafe {
            let mut signals: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut signals);
            // SIGHUP too: a terminal closed mid-conversion.
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut signals, signal);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) != 0 {
                return;
            }
            signals
        };
        std::thread::spawn(move || {
            let mut signal = 0;
            // SAFETY: `signals` is an initialised set this thread owns; `signal` is written by sigwait.
            while unsafe { libc::sigwait(&signals, &mut signal) } != 0 {}
            let abandoned = fastllm_checkpoint::policy::abandon_live_outputs();
            let name = match signal {
                libc::SIGINT => "SIGINT",
                libc::SIGHUP => "SIGHUP",
                _ => "SIGTERM",
            };
            let removed = if abandoned.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = abandoned.iter().map(|p| p.display().to_string()).collect();
                format!("; removed the partial output ({})", list.join(", "))
            };
            note(&format!("error: interrupted by {name}{removed}"));
            std::process::exit(128 + signal);
        });
    }
}

/// Prints `text` on stderr. Everything the CLI prints, here and on stdout, passes the same
/// filter: no control character but the newline reaches the terminal, whatever an input named.
fn note(text: &str) {
    eprintln!("{}", config::printable_lines(text));
}

fn run(cli: Cli) -> Result<String, String> {
    let registry = core::registry_errors();
    if !registry.is_empty() {
        return Err(format!(
            "the format registry is inconsistent:\n  {}",
            registry.join("\n  ")
        ));
    }
    match cli.command {
        Command::Config(ConfigCommand::Normalize { form, model, file }) => normalize(&file, form, model),
        Command::Config(ConfigCommand::Import {
            format,
            text_only,
            drop_keys,
            file,
        }) => {
            let options = convert::ImportOptions {
                drop_keys: &drop_keys,
                text_only,
            };
            import(&format, &options, &file)
        }
        Command::Config(ConfigCommand::Export {
            format,
            hf_layout,
            complete,
            file,
        }) => {
            let options = api::ExportOptions {
                layout: hf_layout.into(),
                complete,
            };
            export(&format, &options, &file)
        }
        Command::Formats => Ok(formats()),
        Command::Convert {
            from,
            to,
            hf_layout,
            config_only,
            dry_run,
            json,
            force,
            max_shard_size,
            text_only,
            drop_keys,
            shard,
            dtype,
            allow_overflow,
            layout: parallel,
            optimizer_state,
            part,
            finalize,
            io_concurrency,
            io_part_size,
            io_retries,
            input,
            output,
        } => {
            let options = convert::Options {
                layout: hf_layout.into(),
                config_only,
                dry_run,
                force,
                max_shard_bytes: max_shard_size,
                text_only,
                drop_keys,
                shard,
                dtype,
                allow_overflow,
                parallel,
                optimizer_state,
                part,
                finalize,
                remote_input: None,
                remote_output: None,
                remote_parts: None,
            };
            let io = crate::remote::IoOptions {
                concurrency: usize::from(io_concurrency),
                part_bytes: usize::try_from(io_part_size.max(5 << 20)).unwrap_or(usize::MAX),
                retries: io_retries,
            };
            let request = api::ConvertRequest {
                from: &from,
                to: &to,
                input: &input,
                output: &output,
            };
            let report = if json { Report::Json } else { Report::Text };
            convert_checkpoint(&request, &options, &io, report)
        }
        Command::Inspect { path } => inspect(&path),
        Command::Explain { format } => {
            let handler = core::find(&format).map_err(|e| e.to_string())?;
            Ok(explain::render(&explain::rows(&handler.converter().base_model)))
        }
    }
}

fn normalize(file: &Path, form: FormArg, model: ModelArg) -> Result<String, String> {
    let kind = match model {
        ModelArg::Gpt => ModelKind::Gpt,
        ModelArg::Multimodal => ModelKind::MultiModal,
    };
    let form = match form {
        FormArg::Explicit => Form::Explicit,
        FormArg::Architecture => Form::Architecture,
        FormArg::Full => Form::Full,
    };
    let dict = api::read_config(file).map_err(|f| f.message)?;
    let normalized = api::normalize(&dict, Some(file), kind, form).map_err(|f| f.message)?;
    Ok(Value::Map(normalized).to_json_pretty())
}

fn import(format: &str, options: &convert::ImportOptions, file: &Path) -> Result<String, String> {
    // A wrong format name is reported before the file is read.
    if format != "auto" {
        core::find(format).map_err(|e| e.to_string())?;
    }
    let hf = api::read_config(file).map_err(|f| f.message)?;
    let (config, dropped) = api::import_config(format, hf, Some(file), options).map_err(|f| f.message)?;
    for dropped in dropped.iter().filter(|d| d.by == convert::DropCause::Requested) {
        note(&format!(
            "dropped (--drop-key): config key {} = {}",
            config::printable(&dropped.key),
            core::dict::show(&dropped.value)
        ));
    }
    let dropped = dropped_note(&dropped, &[]);
    if !dropped.is_empty() {
        note(dropped.trim_start());
    }
    Ok(Value::Map(config).to_json_pretty())
}

fn export(format: &str, options: &api::ExportOptions, file: &Path) -> Result<String, String> {
    if format != "auto" {
        // A wrong format name is reported before the file is read.
        core::find(format).map_err(|e| e.to_string())?;
    }
    let dict = if format == "auto" {
        Map::new()
    } else {
        api::read_config(file).map_err(|f| f.message)?
    };
    let hf = api::export_config(format, &dict, Some(file), options).map_err(|f| f.message)?;
    Ok(Value::Map(hf).to_json_pretty())
}

/// How `convert` reports what it did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Report {
    /// Sentences for a person, and a progress bar on a terminal.
    Text,
    /// The summary as one JSON document (`--json`).
    Json,
}

fn convert_checkpoint(
    request: &api::ConvertRequest,
    options: &convert::Options,
    io: &crate::remote::IoOptions,
    report: Report,
) -> Result<String, String> {
    let &api::ConvertRequest { input, output, .. } = request;
    // A progress bar on a terminal; nothing when stderr is a file or pipe.
    let bar = (std::io::IsTerminal::is_terminal(&std::io::stderr()) && !options.dry_run && report == Report::Text)
        .then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style =
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}");
            bar.set_style(style.expect("a valid template"));
            bar
        });
    let mut progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
        std::ops::ControlFlow::Continue(())
    };
    let summary = crate::remote::convert(request, options, io, &mut progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    if report == Report::Json {
        return Ok(crate::summary::JsonSummary::new(&summary, options).to_json_pretty());
    }
    let mut out = String::new();
    if options.dry_run {
        out.push_str(&format!(
            "plan: {} ({}) -> {} ({})\n",
            input.display(),
            summary.from,
            output.display(),
            summary.to
        ));
        for t in &summary.tensors {
            out.push_str(&format!(
                "{:60} {:6} {:>16} {:>12}  <- {} ({:?}{})\n",
                config::printable(&t.name),
                config::printable(&t.dtype),
                format!("{:?}", t.shape),
                t.bytes,
                joined(&t.from, " + "),
                t.transform,
                t.cast_from
                    .as_ref()
                    .map_or_else(String::new, |from| format!(", cast from {}", config::printable(from)))
            ));
        }
    }
    if options.config_only {
        out.push_str(&format!(
            "{} the config only: {} -> {} in {}",
            if options.dry_run { "would write" } else { "wrote" },
            summary.from,
            summary.to,
            output.display()
        ));
        out.push_str(&missing_extra_files_note(&summary));
        out.push_str(&dropped_note(&summary.dropped_keys, &summary.dropped_tensors));
        out.push_str(&carried_note(&summary, options));
        return Ok(out);
    }
    if let (Some(part), false) = (options.part, options.dry_run) {
        out.push_str(&format!(
            "wrote part {part} ({} file(s)) {} -> {} in {}: {}",
            summary.files.len(),
            summary.from,
            summary.to,
            summary.output.display(),
            joined(&summary.files, ", ")
        ));
        return Ok(out);
    }
    out.push_str(&format!(
        "{} {} tensors ({} bytes) {} -> {}{}",
        if options.dry_run { "would write" } else { "wrote" },
        summary.tensors.len(),
        summary.bytes(),
        summary.from,
        summary.to,
        if options.dry_run {
            String::new()
        } else {
            format!(" in {}: {}", output.display(), joined(&summary.files, ", "))
        }
    ));
    out.push_str(&missing_extra_files_note(&summary));
    out.push_str(&dropped_note(&summary.dropped_keys, &summary.dropped_tensors));
    out.push_str(&training_note(&summary));
    out.push_str(&overflow_note(&summary));
    out.push_str(&carried_note(&summary, options));
    Ok(out)
}

/// The tensors whose cast wrote finite values as infinities (`--allow-overflow`).
fn overflow_note(summary: &convert::Summary) -> String {
    if summary.overflows.is_empty() {
        return String::new();
    }
    let tensors: Vec<String> = (summary.overflows.iter())
        .map(|o| {
            format!(
                "`{}` {} value{} (largest magnitude {:e})",
                config::printable(&o.tensor),
                o.count,
                if o.count == 1 { "" } else { "s" },
                o.largest
            )
        })
        .collect();
    format!("\noverflowed to infinity (--allow-overflow): {}", tensors.join(", "))
}

/// What of a training checkpoint is not converted: its other shards and the trainer's state.
fn training_note(summary: &convert::Summary) -> String {
    let mut out = String::new();
    if !summary.skipped_shards.is_empty() {
        // Formats holding optimizer state take it whole; an HF model takes one shard of a
        // training checkpoint, and none of a state dict.
        let hint = if matches!(summary.to, "fast_llm" | "fast_llm_distributed") {
            "--optimizer-state carries them"
        } else if summary.from == "fast_llm_distributed" {
            "one shard is converted: --shard NAME chooses it"
        } else {
            "an HF model holds no optimizer state"
        };
        out.push_str(&format!(
            "\nnot converted: shards {} ({hint})",
            joined(&summary.skipped_shards, ", ")
        ));
    }
    if !summary.training_state.is_empty() {
        let state: Vec<String> = summary
            .training_state
            .iter()
            .map(|(key, value)| format!("{} = {}", config::printable(key), core::dict::show(value)))
            .collect();
        out.push_str(&format!("\nnot converted: training state {}", state.join(", ")));
    }
    out
}

/// Names from an input, each on one line (see [`config::printable`]), joined by `separator`.
fn joined(items: &[impl AsRef<str>], separator: &str) -> String {
    let items: Vec<_> = items.iter().map(|item| config::printable(item.as_ref())).collect();
    items.join(separator)
}

/// A note naming every input key and tensor dropped with `--text-only` (empty when none).
fn dropped_note(keys: &[convert::DroppedKey], tensors: &[String]) -> String {
    let mut out = String::new();
    let keys: Vec<&str> = keys
        .iter()
        .filter(|k| k.by == convert::DropCause::NotConverted)
        .map(|k| k.key.as_str())
        .collect();
    if !keys.is_empty() {
        out.push_str(&format!(
            "\nnote: --text-only dropped {} config key(s) the format does not convert: {}",
            keys.len(),
            joined(&keys, ", ")
        ));
    }
    if !tensors.is_empty() {
        out.push_str(&format!(
            "\nnote: --text-only dropped {} tensor(s) the format does not convert: {}",
            tensors.len(),
            joined(tensors, ", ")
        ));
    }
    out
}

/// What besides config and weights the output has (would have, on a dry run), and what of the
/// input it does not.
fn carried_note(summary: &convert::Summary, options: &convert::Options) -> String {
    let (carry, copy) = if options.dry_run {
        ("would carry", "would copy")
    } else {
        ("carried", "copied")
    };
    let mut out = String::new();
    let list = |items: &[String]| {
        if items.is_empty() {
            "nothing".to_string()
        } else {
            joined(items, ", ")
        }
    };
    out.push_str(&format!("\n{carry} config keys: {}", list(&summary.carried_keys)));
    for n in &summary.not_carried_keys {
        out.push_str(&format!(
            "\nnot carried: config key {} = {}: {}",
            config::printable(&n.key),
            core::dict::show(&n.value),
            n.reason
        ));
    }
    for dropped in summary
        .dropped_keys
        .iter()
        .filter(|d| d.by == convert::DropCause::Requested)
    {
        out.push_str(&format!(
            "\ndropped (--drop-key): config key {} = {}",
            config::printable(&dropped.key),
            core::dict::show(&dropped.value)
        ));
    }
    out.push_str(&format!("\n{copy} files: {}", list(&summary.companions.copied)));
    for (file, reason) in &summary.companions.not_copied {
        out.push_str(&format!("\nnot copied: {}: {reason}", config::printable(file)));
    }
    out
}

/// A note naming the format's extra files the input did not have (empty when none).
fn missing_extra_files_note(summary: &convert::Summary) -> String {
    if summary.missing_extra_files.is_empty() {
        return String::new();
    }
    format!(
        "\nnote: {} checkpoints usually carry {}, which the input does not have; add them by hand if \
         the model needs them",
        summary.to,
        joined(&summary.missing_extra_files, ", ")
    )
}

/// `inspect PATH`: a local directory, or an object-store URL read in place (documents and
/// headers only).
fn inspect(path: &Path) -> Result<String, String> {
    crate::remote::with_checkpoint(path, &crate::remote::IoOptions::default(), |dir, remote| {
        describe(path, dir, remote).map_err(crate::api::Failure::message)
    })
    .map_err(|failure| failure.message)
}

/// What `inspect` prints of the checkpoint `shown` (its files in `path`, and the tensor files
/// `remote` holds when it is in an object store).
fn describe(shown: &Path, path: &Path, remote: Option<&RemoteInput>) -> Result<String, String> {
    let side = convert::detect(path).map_err(|e| e.to_string())?;
    let checkpoint = match side {
        convert::Side::FastLlm => fastllm_checkpoint::open_fast_llm_with(path, remote),
        convert::Side::Hf(_) => fastllm_checkpoint::open_hf_with(path, remote),
        convert::Side::FastLlmDistributed => return inspect_distributed(shown, path, remote),
    }
    .map_err(|e| e.to_string())?;
    let mut dtypes: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    let mut parameters: u128 = 0;
    for name in checkpoint.files.names() {
        let tensor = checkpoint.files.tensor(name).expect("listed");
        let entry = dtypes.entry(tensor.dtype).or_default();
        entry.0 += 1;
        entry.1 += tensor.bytes;
        parameters += tensor.shape.iter().map(|&d| d as u128).product::<u128>();
    }
    let mut out = format!("{}\n  format: {}\n", shown.display(), side.name());
    // The model summary is the text model's: the parts the format does not convert are named.
    let mut unconverted = String::new();
    let config = match side {
        convert::Side::Hf(handler) => {
            let (hf, keys) = handler.without_unconverted(&checkpoint.config);
            let tensors = checkpoint
                .files
                .names()
                .filter(|n| handler.unconverted_tensor(n).is_some())
                .count();
            if !keys.is_empty() || tensors > 0 {
                unconverted = format!(
                    "  not converted ({} drops them): config keys {}; {tensors} tensors\n",
                    core::hint::spell(core::hint::Hint::TextOnly),
                    if keys.is_empty() {
                        "-".into()
                    } else {
                        joined(&keys, ", ")
                    }
                );
            }
            handler.import(&hf).map_err(|e| e.to_string())
        }
        convert::Side::FastLlm => convert::fast_llm_base_model(&checkpoint).map_err(|e| e.to_string()),
        convert::Side::FastLlmDistributed => unreachable!("inspected above"),
    };
    if let Ok(config) = config {
        out.push_str(&model_line(&config));
    }
    out.push_str(&unconverted);
    out.push_str(&format!(
        "  tensors: {}  parameters: {parameters}\n",
        checkpoint.files.len()
    ));
    for (dtype, (count, bytes)) in dtypes {
        out.push_str(&format!(
            "  dtype {}: {count} tensors, {bytes} bytes\n",
            config::printable(dtype)
        ));
    }
    out.push_str(&format!("  files: {}", joined(&checkpoint.files.file_names(), ", ")));
    Ok(out)
}

/// The model's kind and main sizes.
fn model_line(config: &config::BaseModelConfig) -> String {
    let arch = config.to_form(Form::Architecture);
    let get = |p: &str| {
        core::dict::get(&arch, p)
            .map(core::dict::show)
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "  model: {}  hidden_size: {}  layers: {}  vocab: {}\n",
        config.kind().name(),
        get("hidden_size"),
        get("decoder.num_blocks"),
        get("embeddings.vocab_size")
    )
}

/// A training checkpoint: its model, parallel layout, shards, parameters and progress.
fn inspect_distributed(shown: &Path, path: &Path, remote: Option<&RemoteInput>) -> Result<String, String> {
    let checkpoint = DistributedCheckpoint::open_with(path, remote).map_err(|e| e.to_string())?;
    let layout = checkpoint.layout();
    let parallel = &layout.parallelism;
    let mut out = format!("{}\n  format: fast_llm_distributed\n", shown.display());
    out.push_str(&model_line(checkpoint.base_model()));
    out.push_str(&format!(
        "  parallel: world {} = tensor {} × pipeline {} × data {}  pipeline_first: {}  sequence_data: {}  \
         zero_stage: {}\n",
        parallel.world_size,
        parallel.tensor_parallel,
        parallel.pipeline_parallel,
        parallel.data_parallel,
        parallel.pipeline_first,
        parallel.sequence_data_parallel,
        parallel
            .zero_stage
            .map_or_else(|| "default".to_string(), |s| s.to_string()),
    ));
    out.push_str(&format!(
        "  stages: {}  layers_per_stage: {}\n",
        layout.stages.len(),
        parallel.layers_per_stage
    ));
    out.push_str(&format!(
        "  shards: {}  dtype: {}\n",
        joined(checkpoint.shard_names(), ", "),
        checkpoint.dtype()
    ));
    let (tensors, parameters) = checkpoint.parameters().fold((0usize, 0u128), |(n, total), placed| {
        let numel: u128 = placed.parameter.shape().iter().map(|&d| d as u128).product();
        (n + 1, total + numel)
    });
    out.push_str(&format!("  tensors: {tensors}  parameters: {parameters}\n"));
    let progress: Vec<String> = [("step", "completed_steps"), ("documents_seen", "documents_seen")]
        .iter()
        .filter_map(|(label, key)| {
            core::dict::get(checkpoint.metadata(), &format!("metadata.{key}"))
                .map(|value| format!("{label}: {}", core::dict::show(value)))
        })
        .collect();
    if !progress.is_empty() {
        out.push_str(&format!("  {}\n", progress.join("  ")));
    }
    let files: Vec<String> = (0..parallel.world_size)
        .map(fastllm_checkpoint::distributed::rank_file)
        .collect();
    out.push_str(&format!("  files: metadata.yaml, {}", files.join(", ")));
    Ok(out)
}

fn formats() -> String {
    let handlers = core::handlers();
    let mut out = format!("families: {}\n", crate::families().join(", "));
    let width = handlers.iter().map(|h| h.name.len()).max().unwrap_or(6).max(6);
    out.push_str(&format!(
        "{:width$}  {:10}  {:24}  {}\n",
        "format", "model", "HF model_type", "HF architecture"
    ));
    for h in handlers {
        out.push_str(&format!(
            "{:width$}  {:10}  {:24}  {}\n",
            h.name,
            h.model.name(),
            h.model_types.join(", "),
            h.architecture
        ));
    }
    out.trim_end().to_string()
}
