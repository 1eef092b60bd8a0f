"""Compare: every registered method's operating points trained, evaluated and timed on one task.

    sweep    what compare asks of a method's `sweep` module (groups, points) and the budgets
    engine   the stages of `bert-speedup-compare`: fine-tune, train, evaluate, time, resume
    report   results.csv, pareto.png, report.md
    demo     `bert-speedup-demo`: the quick budget on the bundled SST-2 sample, one table
"""
