"""Studies: the papers' ablation tables re-run (ablate) and methods side by side (compare)."""
