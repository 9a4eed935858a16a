//! Diagnostics: one error or warning with a location, rendered like a compiler's.

use crate::source::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

/// One rule of `pbr lint` (loaders and checks name their findings by it): its id, its default severity and a one-line description.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: RuleId,
    pub severity: Severity,
    pub doc: &'static str,
}

/// The rule ids (one enum, so that a finding cannot name a rule that does not exist) and the
/// table of rules, from one list.
macro_rules! rules {
    ($($v:ident = $id:literal, $sev:ident, $doc:expr;)*) => {
        /// A lint rule, by its stable id (`RuleId::MissingFile` is `missing-file`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId { $($v),* }

        impl RuleId {
            /// The id users write (`# pbr-lint: disable=missing-file`, `.pbr-lint.yml`).
            pub const fn as_str(self) -> &'static str {
                match self { $(RuleId::$v => $id),* }
            }
        }

        /// Every rule lint knows.
        pub const RULES: &[Rule] = &[$(Rule { id: RuleId::$v, severity: Severity::$sev, doc: $doc }),*];
    };
}

rules! {
    YamlSyntax = "yaml-syntax", Error, "the file is not valid YAML";
    Encoding = "encoding", Error, "a playbook, inventory, vars or template file that is not UTF-8 text";
    YamlDuplicateKey = "yaml-duplicate-key", Error, "a key appears twice in one mapping";
    YamlTruthy = "yaml-truthy", Warning, "a plain yes/no/on/off is a boolean where a string is expected: quote it";
    OctalMode = "octal-mode", Warning, "`mode:` given as an unquoted number: quote octal modes (\"0644\")";
    UnknownKeyword = "unknown-keyword", Error, "a play or task keyword pbr does not know (often a typo or bad indentation)";
    MultipleModules = "multiple-modules", Error, "a task calls more than one module";
    NoModule = "no-module", Error, "a task calls no module";
    UnknownModule = "unknown-module", Error, "a task calls a module that does not exist";
    BadArgs = "bad-args", Error, "module arguments that cannot be read";
    Playbook = "playbook", Error, "a playbook structure error (wrong type, missing `hosts:`, include cycle...)";
    MissingFile = "missing-file", Error, "a file the playbook names (tasks, vars, role, copy/template src) does not exist";
    UnknownParam = "unknown-param", Error, "a module param that the module does not take";
    ParamType = "param-type", Error, "a module param of the wrong type";
    MissingParam = "missing-param", Error, "a required module param is missing";
    ParamValue = "param-value", Error, "a module param value the module does not accept";
    ParamConflict = "param-conflict", Error, "module params that do not go together";
    RoleArgs = "role-args", Error, "role params that the role's argument spec (meta/argument_specs.yml) refuses";
    UndefinedVar = "undefined-var", Error, "a template uses a variable defined nowhere (inventory, vars, facts, register...)";
    TemplateSyntax = "template-syntax", Error, "a Jinja template or expression with a syntax error";
    NotifyUnknown = "notify-unknown", Error, "`notify:` names no handler (name or `listen:` topic) of the play";
    HandlerUnused = "handler-unused", Warning, "a handler no task notifies";
    CommandInsteadOfModule = "command-instead-of-module", Warning, "`command`/`shell` runs a tool a module manages (systemctl, apt-get...)";
    DestructiveWithoutGuard = "destructive-without-guard", Warning, "`force: true` without a comment explaining it or a tag to skip it";
    PlaintextSecret = "plaintext-secret", Warning, "a password, psk or token written in plain text in the repository";
    HostUnused = "host-unused", Warning, "an inventory host that no play targets";
    LimitEmpty = "limit-empty", Error, "the --limit pattern matches no host";
    DuplicateHost = "duplicate-host", Warning, "a host declared twice in the same group";
    Inventory = "inventory", Error, "the inventory cannot be read";
    LintConfig = "lint-config", Warning, "a problem in .pbr-lint.yml";
}

/// A located message. `code` is a stable rule id (`unknown-param`, `yaml-syntax`...).
#[derive(Debug, Clone)]
pub struct Diag {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Short text shown under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    /// The name the finding is about, for a step that adds to it later (an unknown module's
    /// name, which lint's "did you mean" reads instead of the message).
    pub subject: Option<String>,
}

impl Diag {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
            notes: Vec::new(),
            subject: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diag {
        Diag { severity: Severity::Warning, ..Diag::error(code, span, message) }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diag {
        self.label = Some(label.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diag {
        self.notes.push(note.into());
        self
    }

    /// Give a span to a diagnostic that has none.
    pub fn or_span(mut self, span: Span) -> Diag {
        if self.span.is_none() {
            self.span = span;
        }
        self
    }

    /// Render for a terminal (`color` adds ANSI colours): header with `file:line:col`,
    /// the source line, a caret under the span, then help and notes.
    pub fn render(&self, color: bool) -> String {
        crate::diag_render::render(self, color)
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.span.is_none() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.span.location(), self.message)
        }
    }
}

impl std::error::Error for Diag {}

/// Several diagnostics (a parse or lint run can report more than one).
#[derive(Debug, Clone, Default)]
pub struct Diags(pub Vec<Diag>);

impl From<Diag> for Diags {
    fn from(d: Diag) -> Self {
        Diags(vec![d])
    }
}
