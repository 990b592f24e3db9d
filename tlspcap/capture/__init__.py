"""Reading capture files (pcap, pcapng, gzip) and decoding link, IP and TCP headers."""
