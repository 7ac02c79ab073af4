"""What does provscan know: licences, publishers, model families and pickle globals (typed YAML)."""
