"""How the operator learns which model version should serve: cached registry answers, who asked."""
