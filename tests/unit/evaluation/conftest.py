from study_fixtures import fixture_files  # noqa: F401  (the pytest fixture)
