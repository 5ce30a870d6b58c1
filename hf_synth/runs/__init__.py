"""A run's files and figures: its input loaded (`inputs`), the folders a command may write (`outputs`),
its recipe (`recipe`), the finished batches a cluster keeps (`checkpoint`), and what it will cost
(`estimation`)."""
