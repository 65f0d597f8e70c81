"""The 2AFC user study: build a study database, serve it to raters, analyze the votes."""
