//! The agent console AIFactory serves for a running task (its rmux pane): the coding
//! agent's terminal as ANSI-coloured lines, a few a second, following the task's phase.
//! A coder that stopped reporting still has a terminal: it shows the agent retrying.

use super::task::Task;

/// What a console shows of its task at one moment.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleView {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) phase: &'static str,
    pub(crate) subtask: Option<String>,
    pub(crate) stalled: bool,
    files: [String; 3],
}

impl Task {
    /// Whether AIFactory serves this task's console: a run is under way (a stalled
    /// coder's terminal is still open).
    pub(crate) fn console_live(&self) -> bool {
        matches!(self.status, "in_progress" | "ai_review")
    }

    /// The task as its console shows it now.
    pub(crate) fn console_view(&self) -> ConsoleView {
        let slug: String = self
            .title
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
            .split('_')
            .filter(|w| !w.is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join("_");
        let slug = if slug.is_empty() {
            "change".to_owned()
        } else {
            slug
        };
        let subtask = self
            .progress
            .current_subtask
            .as_ref()
            .and_then(|id| self.subtasks.iter().find(|s| &s.id == id))
            .or_else(|| self.subtasks.iter().find(|s| s.status == "in_progress"))
            .map(|s| s.title.clone());
        ConsoleView {
            id: self.id.clone(),
            title: self.title.clone(),
            phase: self.progress.phase,
            subtask,
            stalled: self.stalled,
            files: [
                format!("src/{slug}.rs"),
                format!("src/{slug}/handler.rs"),
                format!("tests/{slug}_test.rs"),
            ],
        }
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";

/// The first lines a watcher sees: which agent this is.
pub(crate) fn console_banner(view: &ConsoleView) -> String {
    format!(
        "{BOLD}{CYAN}● agent console{RESET} {BOLD}{}{RESET} {DIM}· {}{RESET}\r\n{DIM}  phase {} · read-only{RESET}\r\n",
        view.id, view.title, view.phase
    )
}

/// The `n`th line of output (from 1), stamped `clock` (`HH:MM:SS`), ending in CR LF.
pub(crate) fn console_line(view: &ConsoleView, n: u64, clock: &str) -> String {
    let at = format!("{DIM}{clock}{RESET}");
    let file = &view.files[(n / 5 % 3) as usize];
    let subtask = view.subtask.as_deref().unwrap_or("the implementation plan");
    let body = if view.stalled {
        match n % 3 {
            0 => format!("{YELLOW}⚠ model request timed out after 120s{RESET}"),
            1 => format!("{DIM}  retrying (attempt {}) in 30s…{RESET}", n / 3 + 1),
            _ => format!("{MAGENTA}✻ Waiting for the model…{RESET} {DIM}{subtask}{RESET}"),
        }
    } else {
        match view.phase {
            "spec_creation" | "planning" => match n % 4 {
                0 => format!("{BLUE}● Planner{RESET} reading the issue and the repository layout"),
                1 => format!(
                    "  {CYAN}Glob{RESET} {DIM}src/**/*.rs{RESET} → {} files",
                    12 + n % 9
                ),
                2 => format!("  {CYAN}Read{RESET} {BOLD}{file}{RESET}"),
                _ => format!(
                    "{MAGENTA}✻ Thinking…{RESET} {DIM}splitting the work into subtasks{RESET}"
                ),
            },
            "qa_review" | "qa_fixing" => match n % 4 {
                0 => format!(
                    "{BLUE}● QA{RESET} checking acceptance criterion {}",
                    n % 5 + 1
                ),
                1 => format!("{YELLOW}${RESET} cargo test --test {}", file_stem(file)),
                2 => format!(
                    "  {GREEN}test result: ok.{RESET} {} passed; {RED}0 failed{RESET}",
                    8 + n % 7
                ),
                _ => format!("  {GREEN}✓{RESET} criterion met {DIM}({subtask}){RESET}"),
            },
            _ => match n % 5 {
                0 => format!("{MAGENTA}✻ Thinking…{RESET} {DIM}{subtask}{RESET}"),
                1 => format!("{CYAN}● Read{RESET} {BOLD}{file}{RESET}"),
                2 => format!(
                    "{CYAN}● Edit{RESET} {file} {GREEN}+{}{RESET} {RED}-{}{RESET}",
                    4 + n % 17,
                    n % 6
                ),
                3 => format!("{YELLOW}${RESET} cargo test {}", file_stem(file)),
                _ => format!(
                    "  {GREEN}test result: ok.{RESET} {} passed; 0 failed {DIM}finished in 0.{}s{RESET}",
                    3 + n % 9,
                    10 + n % 80
                ),
            },
        }
    };
    format!("{at} {body}\r\n")
}

fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".rs").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(phase: &'static str, stalled: bool) -> ConsoleView {
        ConsoleView {
            id: "proj:003".into(),
            title: "Checkout retry".into(),
            phase,
            subtask: Some("Retry the payment call".into()),
            stalled,
            files: [
                "src/checkout_retry.rs".into(),
                "src/checkout_retry/handler.rs".into(),
                "tests/checkout_retry_test.rs".into(),
            ],
        }
    }

    #[test]
    fn lines_are_coloured_terminal_lines_that_follow_the_phase() {
        let coding: Vec<String> = (1..=10)
            .map(|n| console_line(&view("coding", false), n, "10:00:00"))
            .collect();
        assert!(
            coding
                .iter()
                .all(|l| l.ends_with("\r\n") && l.contains("\x1b["))
        );
        assert!(
            coding
                .iter()
                .any(|l| l.contains("Edit") && l.contains("src/checkout_retry"))
        );
        assert!(coding.iter().any(|l| l.contains("cargo test")));
        let qa = console_line(&view("qa_review", false), 4, "10:00:00");
        assert!(qa.contains("QA"), "{qa}");
        let stalled: Vec<String> = (1..=3)
            .map(|n| console_line(&view("coding", true), n, "10:00:00"))
            .collect();
        assert!(stalled.iter().any(|l| l.contains("retrying")));
        assert!(!stalled.iter().any(|l| l.contains("cargo test")));
        assert!(console_banner(&view("coding", false)).contains("proj:003"));
    }
}
