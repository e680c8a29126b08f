"""Discovery: the sources that notice devices on the onboarding network, and their merge."""
