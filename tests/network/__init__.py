"""The hostapd backend of the onboarding network, against a fake control socket."""
