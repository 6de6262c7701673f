"""The tools wing: commands that measure or picture the product (bench, soak, ui-bench,
screenshots). They build on the core modules; no core module imports them, only the CLI
dispatches to them."""
