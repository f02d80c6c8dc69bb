"""The live console: one page at ``console.path`` showing what a service runs and how it is
doing, and the JSON it reads (``<console.path>/api/state``). See docs/console.md."""
