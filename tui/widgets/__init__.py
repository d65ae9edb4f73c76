"""Widgets of the app: token ribbons, the virtualised table, the engine option form, the navigation and status
lines."""
