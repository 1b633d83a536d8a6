//! `outputs:`, and the check that no two files of the output directory share a name.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::Resolver;
use crate::config::checks;
use crate::config::file::{FileConfig, FileOutputs};
use crate::config::{Config, ConfigError, FileMode, OutputsConfig, Owner, RoleConfig, RoleName};

impl Resolver<'_> {
    /// `outputs:`; `roles` are the resolved roles, which `default_role` must name.
    pub(super) fn outputs(
        &self,
        outputs: &FileOutputs,
        roles: &[RoleConfig],
    ) -> Result<OutputsConfig, ConfigError> {
        let args = self.args;
        let app_directory = self.app_directory(outputs)?;
        let directory = self.output_directory(outputs, app_directory.is_none())?;
        let credentials_file = self.optional_file_name(
            "outputs.credentials_file",
            &outputs.credentials_file,
            "credentials",
        )?;
        let config_file =
            self.optional_file_name("outputs.config_file", &outputs.config_file, "config")?;
        let process_command = self
            .file_or_default(
                "outputs.process_command",
                &outputs.process_command,
                super::super::DEFAULT_PROCESS_COMMAND.into(),
            )
            .check(|command| checks::process_command(command))?;
        let default_role = self.default_role(outputs, roles)?;
        let file_mode = self
            .flag_file_or_default(
                ("--file-mode", &args.file_mode),
                "outputs.file_mode",
                &outputs.file_mode,
                FileMode(0o640),
            )?
            .value;
        let owner = self
            .flag_or_file::<Owner>(("--owner", &args.owner), "outputs.owner", &outputs.owner)?
            .map(|owner| owner.value);
        let switch = |key: &str, value: &Option<Spanned<bool>>, default: bool| {
            self.file_or_default(key, value, default).value
        };
        Ok(OutputsConfig {
            directory,
            credentials_file,
            config_file,
            app_directory,
            process_command,
            default_role,
            process_json: switch("outputs.process_json", &outputs.process_json, true),
            env_file: switch("outputs.env_file", &outputs.env_file, true),
            file_mode,
            owner,
            remove_on_exit: switch("outputs.remove_on_exit", &outputs.remove_on_exit, false),
        })
    }

    /// `outputs.directory`, made absolute: without `app_directory` (`is_dir`) it is the `{dir}`
    /// of the `credential_process` lines, which the application runs from its own working
    /// directory.
    fn output_directory(
        &self,
        outputs: &FileOutputs,
        is_dir: bool,
    ) -> Result<PathBuf, ConfigError> {
        let directory = self.flag_file_or_default(
            ("--output-dir", &self.args.output_dir),
            "outputs.directory",
            &outputs.directory,
            "/var/run/rolerelay".into(),
        )?;
        if directory.value.is_empty() {
            return Err(directory.fail("outputs.directory is empty: give a directory path"));
        }
        let directory = if is_dir {
            directory.check(|d| {
                checks::directory_in_config(d, "outputs.directory (the {dir} of `config`)")
                    .map_err(|e| format!("{e}, or set outputs.app_directory"))
            })?
        } else {
            directory.value
        };
        let path = PathBuf::from(directory);
        Ok(std::path::absolute(&path).unwrap_or(path))
    }

    /// `outputs.app_directory`: a path in another container, so it cannot be made absolute here.
    fn app_directory(&self, outputs: &FileOutputs) -> Result<Option<PathBuf>, ConfigError> {
        let app_directory = self.flag_or_file::<String>(
            ("--app-dir", &self.args.app_dir),
            "outputs.app_directory",
            &outputs.app_directory,
        )?;
        match app_directory {
            Some(directory) if !directory.value.starts_with('/') => Err(directory.fail(
                "app_directory must be an absolute path: where the application container mounts the volume",
            )),
            Some(directory) => directory
                .check(|d| checks::directory_in_config(d, "app_directory"))
                .map(|d| Some(PathBuf::from(d))),
            None => Ok(None),
        }
    }

    /// A file name that `""` disables.
    fn optional_file_name(
        &self,
        key: &str,
        file: &Option<Spanned<String>>,
        default: &str,
    ) -> Result<Option<String>, ConfigError> {
        let name = self.file_or_default(key, file, default.into());
        if name.value.is_empty() {
            return Ok(None);
        }
        name.check(|name| checks::plain_file_name(name)).map(Some)
    }

    /// `outputs.default_role`: one of the configured roles.
    fn default_role(
        &self,
        outputs: &FileOutputs,
        roles: &[RoleConfig],
    ) -> Result<Option<RoleName>, ConfigError> {
        let default_role = self.flag_or_file::<RoleName>(
            ("--default-role", &self.args.default_role),
            "outputs.default_role",
            &outputs.default_role,
        )?;
        let Some(default_role) = default_role else {
            return Ok(None);
        };
        default_role
            .check(|name| {
                if roles.iter().any(|role| &role.name == name) {
                    return Ok(());
                }
                let names: Vec<&str> = roles.iter().map(|role| role.name.as_str()).collect();
                Err(format!(
                    "default_role {:?} is not a configured role: use one of {}",
                    name.as_str(),
                    names.join(", ")
                ))
            })
            .map(Some)
    }

    /// The fixed file names must not collide with each other or with a role's `<role>.json`/`.env`.
    pub(super) fn check_file_names(
        &self,
        config: &Config,
        file: &FileConfig,
    ) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        let fixed = [
            (
                "outputs.credentials_file",
                &file.outputs.credentials_file,
                config.outputs.credentials_file.as_deref(),
            ),
            (
                "outputs.config_file",
                &file.outputs.config_file,
                config.outputs.config_file.as_deref(),
            ),
            (
                "credentials_endpoint.token_file",
                &file.credentials_endpoint.token_file,
                Some(config.credentials_endpoint.token_file.as_str()),
            ),
        ];
        for (key, in_file, name) in fixed {
            let Some(name) = name else { continue };
            let clashes_with_role = config
                .roles
                .iter()
                .any(|role| name == role.file_name("json") || name == role.file_name("env"));
            if !seen.insert(name) || clashes_with_role {
                let origin = self
                    .file_value(key, in_file)
                    .map_or(key.to_string(), |name| name.origin);
                return Err(ConfigError {
                    at: origin,
                    message: format!(
                        "file name {name:?} is used by another output: give it a name of its own"
                    ),
                });
            }
        }
        Ok(())
    }
}
