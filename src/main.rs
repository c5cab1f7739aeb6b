//! The `fastllm-convert` command line.
// A format crate that nothing names is dropped by the linker with its registrations: every
// dependency of the shipped binary must be named. (Test builds add dev-dependencies.)
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fastllm_config::{self as config, Form, ModelKind};
// The umbrella library links the format crates; naming it keeps their registrations.
use fastllm_convert as _;

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
    /// Work with Fast-LLM configs.
    #[command(subcommand)]
    Config(ConfigCommand),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(stdout) => {
            // A closed pipe (e.g. `| head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout().lock(), "{stdout}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::Config(ConfigCommand::Normalize { form, model, file }) => {
            normalize(&file, form, model)
        }
    }
}

fn normalize(file: &Path, form: FormArg, model: ModelArg) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let extension = file.extension().and_then(|e| e.to_str());
    let dict =
        config::parse_document(&text, extension).map_err(|e| format!("{}: {e}", file.display()))?;
    let kind = match model {
        ModelArg::Gpt => ModelKind::Gpt,
        ModelArg::Multimodal => ModelKind::MultiModal,
    };
    let loaded = config::load_base_model(kind, &dict).map_err(|e| {
        format!(
            "{} (Fast-LLM {} base model): {e}",
            file.display(),
            kind.name()
        )
    })?;
    let form = match form {
        FormArg::Explicit => Form::Explicit,
        FormArg::Architecture => Form::Architecture,
        FormArg::Full => Form::Full,
    };
    Ok(config::Value::Map(loaded.to_form(form)).to_json_pretty())
}
