"""Helpers the tests and the benchmarks share, kept out of tests/ so both can import them: ``server`` (a real
`streamlit run` server and a browser-less session that speaks its protocol). Nothing else in artlab imports this."""
