"""The app's screens: one per view (Alignment, Engines, Diff, Metrics, Failures, Vocabulary) plus modal dialogs."""
