"""The onboarding network (the Pi's access point) behind the OnboardingNetwork port."""
