/* healthcheck.h - `aecd --check-health URL`: a tiny HTTP client for a
 * container HEALTHCHECK, so the image needs neither curl nor wget. */
#ifndef AECD_HEALTHCHECK_H
#define AECD_HEALTHCHECK_H

/* GETs url (http://HOST[:PORT][/PATH], HOST a loopback address or
 * "localhost") with a 5 second budget. Returns the process exit status:
 * 0 if it answered 200, 1 if not (reason on stderr), 2 for a bad URL. */
int aecd_check_health(const char *url);

#endif
