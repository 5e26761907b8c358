"""Cloud providers: what the provisioner asks of a cloud (launch, find, list, terminate), with a
real implementation (`aws`) and the simulator's (`simulated`) behind one interface, and the
provider-independent launch policy (`launch`): cheapest available offering first, capacity errors
remembered for a while, fall back to the next offering and capacity type."""
