/// The console's one stylesheet, served from `/console/console.css` (the pages' CSP allows
/// styles from this origin only, no inline ones). Printable: the report page prints as a record.
enum ConsoleStyle {
    static let css = """
        :root { --ink: #1d2327; --muted: #5f6b73; --line: #d5dadd; --accent: #1f5f8b; --deny: #b3261e; --allow: #2e7d32; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.5 "Noto Sans CJK JP", "Hiragino Sans", "Yu Gothic", system-ui, sans-serif; color: var(--ink); background: #f6f7f8; }
        header { display: flex; align-items: center; gap: 16px; padding: 10px 24px; background: #fff; border-bottom: 1px solid var(--line); }
        header .brand { font-weight: 700; color: var(--ink); text-decoration: none; margin-right: auto; }
        nav { display: flex; align-items: center; gap: 14px; }
        nav form { margin: 0; }
        .who { color: var(--muted); font-size: 12px; border: 1px solid var(--line); border-radius: 10px; padding: 0 8px; }
        .languages a { margin-left: 8px; font-size: 12px; }
        main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
        h1 { font-size: 22px; margin: 8px 0 16px; }
        h2 { font-size: 17px; margin: 24px 0 8px; }
        a { color: var(--accent); }
        table { border-collapse: collapse; width: 100%; background: #fff; margin: 8px 0 16px; }
        th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; font-size: 13px; }
        th { background: #eef1f3; font-weight: 600; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .special { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; background: #fde7e4; color: var(--deny); font-size: 12px; font-weight: 600; }
        .deny { color: var(--deny); font-weight: 600; }
        .allow { color: var(--allow); }
        form.filters { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 6px 12px; background: #fff; padding: 12px; border: 1px solid var(--line); }
        form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
        input, select, textarea, button { font: inherit; }
        input, select { padding: 3px 6px; border: 1px solid var(--line); border-radius: 4px; }
        button { padding: 4px 14px; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
        textarea { width: 100%; min-height: 420px; font: 12px/1.4 ui-monospace, monospace; }
        tr.changed td.before { background: #fde7e4; }
        tr.changed td.after { background: #e3f4e5; }
        td.before, td.after { font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; width: 50%; }
        .toolbar { display: flex; gap: 12px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
        .error-code { font-family: ui-monospace, monospace; color: var(--deny); }
        .charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
        .charts svg { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
        dl#entry { display: grid; grid-template-columns: 200px 1fr; background: #fff; border: 1px solid var(--line); padding: 12px; }
        dl#entry dt { color: var(--muted); } dl#entry dd { margin: 0; word-break: break-all; }
        ul.links li { margin: 6px 0; font-size: 16px; }
        @media print { header, .toolbar, form { display: none; } body { background: #fff; } main { max-width: none; } }
        """
}
