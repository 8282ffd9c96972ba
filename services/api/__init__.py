"""The results API: moderators review flags, analysts read figures. Build it with
``services.api.app.create_app(settings)``."""
