"""The reference PCA / infusion pump built on Septum: partition code, therapy logic, hardware simulator."""
