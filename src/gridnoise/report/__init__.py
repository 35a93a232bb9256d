"""Reports and figures, drawn from saved results only (nothing here trains): report sections as
data (`sections`, built from `blocks`), rendered as Markdown (`markdown`) and HTML (`html`), a
run's figures (`run_figures`), a study's (`study_figures`) and the reverse-process GIF (`animate`)."""
