//! The line editor on a terminal (reedline): prompt, keys, menu, history and the read loop.

use std::borrow::Cow;
use std::path::PathBuf;

use nu_ansi_term::{Color, Style};
use reedline::{
    DefaultHinter, DescriptionMode, EditCommand, Emacs, FileBackedHistory, IdeMenu, KeyCode, KeyModifiers, MenuBuilder,
    Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus, Reedline, ReedlineEvent, ReedlineMenu,
    Signal, default_emacs_keybindings,
};

use super::complete::KaqCompleter;
use super::highlight::{KaqHighlighter, KaqValidator};
use super::{Flow, Session};

/// Entries kept in the history file.
const HISTORY: usize = 10_000;

struct KaqPrompt {
    color: bool,
}

impl Prompt for KaqPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Borrowed("kaq")
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("  … ")
    }

    fn render_prompt_history_search_indicator(&self, h: PromptHistorySearch) -> Cow<'_, str> {
        let failing = if matches!(h.status, PromptHistorySearchStatus::Failing) { "failing " } else { "" };
        Cow::Owned(format!("({failing}history search: {}) ", h.term))
    }

    fn get_prompt_color(&self) -> reedline::Color {
        if self.color { Color::Green } else { Color::Default }
    }

    fn get_indicator_color(&self) -> reedline::Color {
        if self.color { Color::Green } else { Color::Default }
    }

    fn get_prompt_multiline_color(&self) -> nu_ansi_term::Color {
        if self.color { Color::DarkGray } else { Color::Default }
    }
}

fn editor(s: &Session, history: Option<PathBuf>) -> anyhow::Result<Reedline> {
    let mut keys = default_emacs_keybindings();
    keys.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![ReedlineEvent::Menu("completion".into()), ReedlineEvent::MenuNext]),
    );
    keys.add_binding(KeyModifiers::SHIFT, KeyCode::BackTab, ReedlineEvent::MenuPrevious);
    keys.add_binding(KeyModifiers::ALT, KeyCode::Enter, ReedlineEvent::Edit(vec![EditCommand::InsertNewline]));
    let mut menu = IdeMenu::default()
        .with_name("completion")
        .with_marker("> ")
        .with_max_completion_height(12)
        .with_default_border()
        .with_description_mode(DescriptionMode::PreferRight)
        .with_max_description_width(60);
    if !s.color {
        menu = menu
            .with_text_style(Style::new())
            .with_selected_text_style(Style::new().reverse())
            .with_description_text_style(Style::new())
            .with_match_text_style(Style::new())
            .with_selected_match_text_style(Style::new().reverse());
    }
    let hint_style = if s.color { Style::new().italic().fg(Color::DarkGray) } else { Style::new() };
    let mut ed = Reedline::create()
        .with_edit_mode(Box::new(Emacs::new(keys)))
        .with_completer(Box::new(KaqCompleter { source: s.source.clone(), macros: s.macros.clone() }))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_highlighter(Box::new(KaqHighlighter { color: s.color, macros: s.macros.clone() }))
        .with_hinter(Box::new(DefaultHinter::default().with_style(hint_style)))
        .with_validator(Box::new(KaqValidator));
    if let Some(path) = history {
        // Queries name users, namespaces and objects: the history is private (0600, in a 0700
        // directory when kaq makes it), like a shell's.
        if let Err(e) = crate::cli::report::keep_private(&path) {
            eprintln!("kaq: warning: history {}: {e}", crate::cli::report::shown(&path));
        }
        match FileBackedHistory::with_file(HISTORY, path.clone()) {
            Ok(h) => ed = ed.with_history(Box::new(h)),
            Err(e) => eprintln!("kaq: warning: history {}: {e} (not kept)", crate::cli::report::shown(&path)),
        }
    }
    Ok(ed)
}

/// Reads and answers until `.quit` or Ctrl-D.
pub fn run(s: &mut Session, history: Option<PathBuf>) -> anyhow::Result<()> {
    let mut ed = editor(s, history)?;
    let prompt = KaqPrompt { color: s.color };
    loop {
        match ed.read_line(&prompt)? {
            Signal::Success(line) if s.handle(&line) == Flow::Quit => break,
            Signal::Success(_) => {}
            // At the prompt, Ctrl-C clears the line (a running query is cancelled by the handler).
            Signal::CtrlC => {}
            Signal::CtrlD => break,
            _ => {}
        }
    }
    let _ = ed.sync_history();
    Ok(())
}
