"""The simulated fleet and its test bed: everything needed to run the appliance against many
devices without a radio (loopback tier and network-namespace tier)."""
