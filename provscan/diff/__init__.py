"""What changed between two AI-BOMs or reports of a model?"""
