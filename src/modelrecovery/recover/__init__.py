"""The fan-out's stage: every candidate refitted to each simulated dataset
(:mod:`.refit`, torch), λ chosen per candidate (:mod:`.selection`) and the generator's
own refitted transform scored (:mod:`.parameters`); the last two import no torch, so
the analysis shares them."""
