"""What Septum knows besides the model: the security-control catalogues it ships, the contradiction patterns
behind CTRL001-CTRL005, and vulnerability records (OSV).

These are inputs both to the analysis (the CTRL and VULN rules) and to the compliance outputs (reports, the
MDS2 form, threats), so they live here, below both: analysis and compliance import this package, and this
package imports neither of them.
"""
