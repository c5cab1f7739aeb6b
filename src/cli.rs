//! The `fastllm-convert` command line (clap), run by the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use fastllm_config::{self as config, Form, Map, ModelKind, Value};
use fastllm_core::{self as core, HfLayout, explain};

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

/// Parses the command line, runs it, prints the result; exit status 2 on any error.
pub fn main() -> ExitCode {
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
    let registry = core::registry_errors();
    if !registry.is_empty() {
        return Err(format!(
            "the format registry is inconsistent:\n  {}",
            registry.join("\n  ")
        ));
    }
    match cli.command {
        Command::Config(ConfigCommand::Normalize { form, model, file }) => normalize(&file, form, model),
        Command::Config(ConfigCommand::Import { format, file }) => import(&format, &file),
        Command::Config(ConfigCommand::Export {
            format,
            hf_layout,
            file,
        }) => export(&format, hf_layout, &file),
        Command::Formats => Ok(formats()),
        Command::Explain { format } => {
            let handler = core::find(&format).map_err(|e| e.to_string())?;
            Ok(explain::render(&explain::rows(&handler.converter().base_model)))
        }
    }
}

fn read_dict(file: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let extension = file.extension().and_then(|e| e.to_str());
    config::parse_document(&text, extension).map_err(|e| format!("{}: {e}", file.display()))
}

fn normalize(file: &Path, form: FormArg, model: ModelArg) -> Result<String, String> {
    let dict = read_dict(file)?;
    let kind = match model {
        ModelArg::Gpt => ModelKind::Gpt,
        ModelArg::Multimodal => ModelKind::MultiModal,
    };
    let loaded = config::load_base_model(kind, &dict)
        .map_err(|e| format!("{} (Fast-LLM {} base model): {e}", file.display(), kind.name()))?;
    let form = match form {
        FormArg::Explicit => Form::Explicit,
        FormArg::Architecture => Form::Architecture,
        FormArg::Full => Form::Full,
    };
    Ok(Value::Map(loaded.to_form(form)).to_json_pretty())
}

fn import(format: &str, file: &Path) -> Result<String, String> {
    // A wrong format name is reported before the file is read.
    let named = if format == "auto" {
        None
    } else {
        Some(core::find(format).map_err(|e| e.to_string())?)
    };
    let dict = read_dict(file)?;
    let hf: &Map = dict.as_map().expect("parse_document returns a mapping");
    let handler = match named {
        Some(handler) => handler,
        None => core::detect(hf).map_err(|e| format!("{}: {e}", file.display()))?,
    };
    let config = handler.import(hf).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Value::Map(config.to_form(Form::Architecture)).to_json_pretty())
}

fn export(format: &str, layout: LayoutArg, file: &Path) -> Result<String, String> {
    if format == "auto" {
        return Err("`--format auto` only applies to import: an export needs an explicit format".into());
    }
    let handler = core::find(format).map_err(|e| e.to_string())?;
    let dict = read_dict(file)?;
    let config = config::load_base_model(handler.model, &dict)
        .map_err(|e| format!("{} (Fast-LLM {} base model): {e}", file.display(), handler.model.name()))?;
    let layout = match layout {
        LayoutArg::V4 => HfLayout::V4,
        LayoutArg::V5 => HfLayout::V5,
    };
    let hf = handler
        .export(&config, layout)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Value::Map(hf).to_json_pretty())
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
