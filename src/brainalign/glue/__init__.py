"""The GLUE check (the paper's Table 1): do brain-tuned encoders keep their language skills?"""
