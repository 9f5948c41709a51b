import sweepq

sweepq.init()
sweepq.log({"loss": 0.0})
