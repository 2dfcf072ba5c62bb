"""The page's stylesheet: quiet, printable, readable without JavaScript."""

CSS = """
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 64px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 4px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 28px 0 10px; }
h4 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase;
     letter-spacing: .04em; }
.meta, .note { color: var(--muted); font-size: 12.5px; margin: 4px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; }
.tile { display: flex; flex-direction: column; padding: 8px 10px;
        border-left: 3px solid var(--accent); background: #f8fafc; border-radius: 4px;
        min-width: 0; }
.tile .k { font-size: 11.5px; color: var(--muted); text-transform: uppercase;
           letter-spacing: .03em; }
.tile .v { font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }
.tile.missing { border-left-color: #d1d5db; }
.tile.missing .v { color: var(--muted); font-weight: 400; font-style: italic; }
.tile .hint { font-size: 11px; color: var(--muted); overflow-wrap: anywhere; }
.tile.partial { border-left-color: #f59e0b; }
.tile.invalid { border-left-color: #dc2626; }
.tile.invalid .v { color: var(--muted); font-weight: 400; text-decoration: line-through; }
.badge { font-size: 12px; background: #fef3c7; color: #92400e; padding: 2px 8px;
         border-radius: 10px; }
.badge.mark { background: #fee2e2; color: #991b1b; }
.verdict { border-left: 3px solid #16a34a; padding: 4px 12px; margin: 8px 0; background: #fff; }
.verdict.partial { border-left-color: #f59e0b; }
.verdict.invalid { border-left-color: #dc2626; }
.verdict ul { margin: 2px 0; padding-left: 20px; }
.warn { background: #fffbeb; border: 1px solid #fcd34d; border-radius: 6px; padding: 8px 14px;
        margin: 12px 0; }
.warn ul { margin: 4px 0; padding-left: 20px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }
.chart { margin: 0 0 14px; background: #fff; border: 1px solid var(--line); border-radius: 8px;
         padding: 10px 12px; min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
.chart figcaption { font-weight: 600; margin-bottom: 4px; }
.plot { width: 100%; min-height: 300px; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 6px 0 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: top; }
thead th { background: #f3f4f6; font-weight: 600; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { font-weight: 500; color: var(--muted); white-space: nowrap; }
table.kv td { overflow-wrap: anywhere; max-width: 520px; font-family: ui-monospace, monospace;
              font-size: 12px; }
tr.pick td { background: #ecfdf5; font-weight: 600; }
ul.notes { color: var(--muted); font-size: 12.5px; }
@media print { .chart { break-inside: avoid; } body { background: #fff; } }
"""
