"""Offline evaluation: labelled corpora, detection metrics, baselines, reports.

Fits on normal training streams only; one score per test trace; ROC-AUC and detection
at 1/5/10 % false alarms with bootstrap intervals, per attack family; STIDE and the
naive IsolationForest run in the same harness. Nothing here prints.
"""
