"""Discovery algorithms behind one interface (`base`), registered in one table (`registry`)."""
